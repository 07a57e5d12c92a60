"""The web side: the pages digests link to, the case library, feeds, JSON API and admin page."""
