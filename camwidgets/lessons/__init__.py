"""Lessons from the Grad-CAM paper, measured on the zoo.

``python -m camwidgets.lessons.robustness`` prints the robustness table.

Each lesson is a module with a function that computes its figures and a command that prints
them as a Markdown table (the docs publish that output as it comes out).
"""
