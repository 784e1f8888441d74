"""The fault and abuse suite: worker kills, restarts, overlapping triggers, bad input."""
