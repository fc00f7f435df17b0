"""A real RTSP camera for crow's tests and benchmarks: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0) serving a video file at /cam, optionally behind basic authentication.

    python3 tests/cameras/rtsp_camera.py PORT VIDEO [USER PASSWORD]
        [--size 640x360] [--fps 10] [--key-every 10] [--codec h264|h265] [--repeat 1]

The file is re-encoded live (x264 or x265, a key frame every `--key-every` frames), played `--repeat`
times in a row; a shared media, so clients joining later see the same stream (vtest.avi lasts 79 s).
Prints "ready" once it listens; runs until killed.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("port")
parser.add_argument("video")
parser.add_argument("user", nargs="?")
parser.add_argument("password", nargs="?")
# 640x360 at 10 frames/s with a key frame every second: a small camera that a 2-core test machine
# encodes in real time.
parser.add_argument("--size", default="640x360")
parser.add_argument("--fps", type=int, default=10)
parser.add_argument("--key-every", type=int, default=10)
parser.add_argument("--codec", choices=["h264", "h265"], default="h264")
# The file played this many times in a row (GStreamer's concat): a camera that outlasts a benchmark.
parser.add_argument("--repeat", type=int, default=1)
args = parser.parse_args()

Gst.init(None)
width, height = args.size.split("x")
encoder = {
    "h264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.key_every} "
    "! rtph264pay name=pay0 pt=96",
    "h265": f"x265enc tune=zerolatency speed-preset=ultrafast key-int-max={args.key_every} "
    "! rtph265pay name=pay0 pt=96",
}[args.codec]


server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(args.port)
factory = GstRtspServer.RTSPMediaFactory()
sources = " ".join(
    f"filesrc location={args.video} ! decodebin ! videoconvert ! c." for _ in range(args.repeat)
)
factory.set_launch(
    f"( concat name=c ! videoconvert ! videoscale "
    f"! video/x-raw,width={width},height={height} ! videorate "
    f"! video/x-raw,framerate={args.fps}/1 ! {encoder} {sources} )"
)
factory.set_shared(True)
if args.user is not None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role("camera")
    permissions.add_permission_for_role("camera", "media.factory.access", True)
    permissions.add_permission_for_role("camera", "media.factory.construct", True)
    factory.set_permissions(permissions)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on port {args.port}")
print("ready", flush=True)
GLib.MainLoop().run()
