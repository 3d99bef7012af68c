"""Models of what a fleet costs: AWS per device-month, battery life."""
