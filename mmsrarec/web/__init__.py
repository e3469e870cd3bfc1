"""The web app: a chat page, a run inspector and a JSON API over `mmsrarec.chat.ChatService`.

- `sessions.py`: unguessable session tokens and the threads each session owns;
- `inspect.py`: a thread's trace turned into what the inspector shows (path, critic rounds,
  similar users, timings);
- `limits.py`: the request-body limit on the byte stream, the per-address rate limit on new
  sessions;
- `turns.py`: the bounded pool chat turns run in (parallel across threads, serial within one);
- `headers.py`: security headers and `Cache-Control: no-store`;
- `app.py`: `create_app(service, server=ServerSettings())`, the routes and error handlers;
- `static/`: the two pages (plain HTML, CSS and a little vanilla JS).
"""
