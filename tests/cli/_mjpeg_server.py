"""A small live MJPEG camera for tests: serves a video's frames, looped, as multipart/x-mixed-replace over HTTP.

    python _mjpeg_server.py PORT VIDEO [FPS]

Prints ``ready`` once listening; every client gets the frames from the start of the loop at FPS frames/s.
"""
from __future__ import annotations

import io
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
from PIL import Image

BOUNDARY = b"tvreidframe"


def load_jpegs(path: str) -> list[bytes]:
    out = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            buf = io.BytesIO()
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(buf, "JPEG", quality=85)
            out.append(buf.getvalue())
    return out


def main() -> None:
    port, video = int(sys.argv[1]), sys.argv[2]
    fps = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
    jpegs = load_jpegs(video)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY.decode()}")
            self.end_headers()
            start, i = time.monotonic(), 0
            try:
                while True:
                    data = jpegs[i % len(jpegs)]
                    self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                    i += 1
                    time.sleep(max(0.0, start + i / fps - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
