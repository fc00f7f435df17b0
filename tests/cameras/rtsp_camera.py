"""A real RTSP camera for crow's tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0)
serving a video file as H.264 at /cam, looped, optionally behind basic authentication.

    python3 tests/cameras/rtsp_camera.py PORT VIDEO [USER PASSWORD]

Prints "ready" once it listens; runs until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, video = sys.argv[1], sys.argv[2]

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# 640x360 at 10 frames/s with a key frame every second: a small camera that a 2-core test machine
# encodes in real time.
factory.set_launch(
    f"( filesrc location={video} ! decodebin ! videoconvert ! videoscale "
    "! video/x-raw,width=640,height=360 ! videorate ! video/x-raw,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
    "! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
if len(sys.argv) > 4:
    user, password = sys.argv[3], sys.argv[4]
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("camera")
    permissions.add_permission_for_role("camera", "media.factory.access", True)
    permissions.add_permission_for_role("camera", "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on port {port}")
print("ready", flush=True)
GLib.MainLoop().run()
