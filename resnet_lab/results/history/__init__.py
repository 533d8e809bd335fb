"""`resnet-lab history`: saved runs over many commits -> series -> change points -> labels, table, Markdown, HTML.

sources.py reads the runs, series.py builds and judges the series, detect.py finds the change points in one
series (ruptures) and their significance, render.py writes the outputs. Nothing here measures anything.
"""
