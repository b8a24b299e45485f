"""The sample Django app. Importing this package must not need Django settings:
the FastAPI service imports ``core.release`` without configuring Django."""
