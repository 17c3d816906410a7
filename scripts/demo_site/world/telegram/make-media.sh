#!/bin/sh
# Regenerates the binary media of the fixture world's Telegram (cdn4.telesco.pe): photos, a video and its poster
# still, and the channels' avatars. The outputs are committed; run this only to change them, then check that
# posts.json still names them (tests/test_telegram.py does). Needs ffmpeg (with libx264). Test patterns, bit-exact.
#
# Telegram's CDN serves files under /file/<opaque name>; the names below are ours, in that shape.
set -eu
cd "$(dirname "$0")"
CDN=cdn4.telesco.pe/file
mkdir -p "$CDN"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
BITEXACT="-map_metadata -1 -fflags +bitexact -flags:v +bitexact -threads 1"

# Photos, at the size the widget shows them (Telegram keeps no larger public rendition: see capture/telegram.py).
ff -f lavfi -i "testsrc2=size=800x450:rate=1" -frames:v 1 -q:v 8 $BITEXACT "$CDN/tQ3nRz8KpWm2YdL4vHs7XcBe9Jf1Ga6U.jpg"
ff -f lavfi -i "smptehdbars=size=640x480:rate=1" -frames:v 1 -q:v 8 $BITEXACT "$CDN/hV5oLb2NwQa8ZkT1rYe4MdCu7Xs3Fp9G.jpg"
ff -f lavfi -i "mandelbrot=size=480x640:rate=1" -frames:v 1 -q:v 8 $BITEXACT "$CDN/pK8sDf3GhJ6lZx1CvBn4Mq7Wr9Ty2Ue5.jpg"
# A 2-second video with a tone, and its poster (the widget's .tgme_widget_message_video_thumb).
ff -f lavfi -i "testsrc=size=320x180:rate=15:duration=2" -f lavfi -i "sine=frequency=660:sample_rate=44100:duration=2" \
   -c:v libx264 -preset slow -profile:v main -crf 36 -pix_fmt yuv420p -c:a aac -b:a 24k -ac 1 -shortest \
   -movflags +faststart $BITEXACT -flags:a +bitexact "$CDN/vR2mXq9LcTz4Nb7Hs1Kd6Yf3Wg8Jp5Ea.mp4"
ff -f lavfi -i "testsrc=size=320x180:rate=1" -frames:v 1 -q:v 10 $BITEXACT "$CDN/vR2mXq9LcTz4Nb7Hs1Kd6Yf3Wg8Jp5Ea_thumb.jpg"
# Channel avatars (the widget's userpic).
ff -f lavfi -i "rgbtestsrc=size=160x160:rate=1" -frames:v 1 -q:v 10 $BITEXACT "$CDN/aE7wQx2RtYu5Io8Pa3Sd6Fg9Hj1Kl4Zc.jpg"
ff -f lavfi -i "pal100bars=size=160x160:rate=1" -frames:v 1 -q:v 10 $BITEXACT "$CDN/aM4nBv7Cx1Zl8Kj5Hg2Fd9Sa3Qw6Er0T.jpg"
