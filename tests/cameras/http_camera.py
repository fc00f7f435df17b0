"""HTTP cameras for crow's tests: an MJPEG stream (multipart/x-mixed-replace, one JPEG per part) at
/video.mjpg and a snapshot URL (one JPEG per request, what ONVIF's GetSnapshotUri names) at
/snapshot.jpg, both cycling through the JPEG files of a folder.

    python3 tests/cameras/http_camera.py PORT FOLDER [FPS]

Prints "ready" once it listens; runs until killed.
"""

import http.server
import os
import sys
import time

port, folder = int(sys.argv[1]), sys.argv[2]
fps = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
frames = [
    open(os.path.join(folder, name), "rb").read()
    for name in sorted(os.listdir(folder))
    if name.endswith(".jpg")
]
served = {"snapshot": 0}


class Camera(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/snapshot.jpg":
            jpeg = frames[served["snapshot"] % len(frames)]
            served["snapshot"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)
        elif self.path == "/video.mjpg":
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i = 0
            try:
                while True:
                    jpeg = frames[i % len(frames)]
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpeg)).encode()
                        + b"\r\n\r\n"
                        + jpeg
                        + b"\r\n"
                    )
                    self.wfile.flush()
                    i += 1
                    time.sleep(1.0 / fps)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_error(404)


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Camera)
print("ready", flush=True)
server.serve_forever()
