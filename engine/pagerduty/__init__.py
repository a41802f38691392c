"""The PagerDuty backend: REST client, live backend, state, channels, manual actions."""
