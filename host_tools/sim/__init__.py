"""Virtual boards: the board itself (vboard/), running it (run), fleets (fleet), faults (chaos)."""
