"""The engine benchmark's parts: adapters (one per library), scenarios, report."""
