"""What the lab asks and how its answers are kept, below everything that measures or reads them: the questions
(groups), the presets the suite runs them with, and the run log's format. Torch-free, imported by the suite (which
writes runs) and the results layer (which reads them) alike."""
