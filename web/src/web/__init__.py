"""The web deployable: a server-rendered front end that is also the Backend-for-Frontend (BFF)."""
