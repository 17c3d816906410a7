#!/bin/sh
# Regenerates the media of the fixture world's Mastodon instances (files.mastodon.social): a photo (the demo site's
# own convoy picture) and two short MP4s (test patterns with a tone). The outputs are committed; statuses.json names
# them. Needs ffmpeg (with libx264). Bit-exact.
set -eu
cd "$(dirname "$0")"
FILES=files.mastodon.social
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
BITEXACT="-map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -threads 1"
clip() {  # $1 WxH, $2 seconds, $3 tone Hz, $4 output, $5 lavfi source
  ff -f lavfi -i "$5=size=$1:rate=15:duration=$2" -f lavfi -i "sine=frequency=$3:sample_rate=44100:duration=$2" \
     -c:v libx264 -preset slow -crf 38 -pix_fmt yuv420p -c:a aac -b:a 24k -ac 1 -shortest -movflags +faststart \
     $BITEXACT "$4"
}
P=$FILES/media_attachments/files/117/670/650/211/983/552
mkdir -p "$P/original" "$P/small"
cp ../../static/img/convoy-halted.jpg "$P/original/3f1c9a2e7b5d4086.jpg"
ff -i ../../static/img/convoy-halted.jpg -vf scale=320:-2 -q:v 6 $BITEXACT "$P/small/3f1c9a2e7b5d4086.jpg"
V=$FILES/cache/media_attachments/files/117/671/462/300/221/184/original
mkdir -p "$V"
clip 320x180 2 660 "$V/a8d2e41f09c37b65.mp4" testsrc2
