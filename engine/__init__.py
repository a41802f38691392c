"""pagerules engine: rules, evaluation, dispatch. See README.md "Layout"."""
