"""The web app: a chat page, a run inspector and a JSON API over `mmsrarec.chat.ChatService`.

- `sessions.py`: unguessable session tokens and the threads each session owns;
- `inspect.py`: a thread's trace turned into what the inspector shows (path, critic rounds,
  similar users, timings);
- `app.py`: `create_app(service)`, the FastAPI routes and error handlers;
- `static/`: the two pages (plain HTML, CSS and a little vanilla JS).
"""
