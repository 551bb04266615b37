"""The web chat and the JSON API.

``app.create_app(settings)`` builds the application; ``schema`` is the API payload, ``views``
builds it, ``live_index`` follows ``index/CURRENT``, ``conversations`` keeps the chat's turns
and the ``routes_*`` modules hold the routes. Importing this package loads nothing heavy.
"""
