"""A scripted tour of a running stack through the API gateway: both sagas, the read models, the front end.

``python -m tools.demo`` (``make demo``) signs up members, writes posts, comments, questions
and answers, runs an answer-acceptance saga and a member-withdrawal saga, and prints for each
step the HTTP call it made and where to look: the page of the web front end, the log lines of
``make run``'s terminal, the saga's steps, the metric. See ``tools/demo/tour.py``.
"""
