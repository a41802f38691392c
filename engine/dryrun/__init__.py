"""Tools that never page: explain, rule tests, replay."""
