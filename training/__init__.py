"""Training machinery shared by every model of the zoo."""
