"""Load generator for demonstrations: realistic mixed traffic through the gateway's public API.

In the manner of Online Boutique's load generator: Locust users, one class per persona
(``locustfile.py``), paced so that the whole run sends a set number of requests per second
until it is stopped. The pure parts (the traffic mix, the pacing, the generated content and
the token refresh rule) import nothing of Locust, so they can be tested without gevent.
"""
