"""Page routers, one module per screen group of the event-storming outcome."""
