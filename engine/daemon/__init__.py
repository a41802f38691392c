"""The daemon: the events folder, the loop, the status file."""
