#!/bin/sh
# Regenerates the Bluesky world's binary media: the blobs as "uploaded" (blobs/<cid>.<ext>, named by their CID:
# CIDv1, raw codec, SHA-256 of the bytes), the CDN's re-encoded copies (cdn/<cid>.jpg) and a video's HLS rendition
# (video/<cid>/...). Outputs are committed; after a change, put the printed CIDs into bluesky.json. Needs ffmpeg.
set -eu
cd "$(dirname "$0")"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
BITEXACT="-map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -threads 1"
cid() { python3 -c 'import base64,hashlib,sys; d=open(sys.argv[1],"rb").read(); print("b"+base64.b32encode(bytes([1,0x55,0x12,0x20])+hashlib.sha256(d).digest()).decode().lower().rstrip("="))' "$1"; }
rm -rf blobs cdn video && mkdir -p blobs cdn video
for spec in "smptebars:1600x1200" "testsrc:1200x900"; do
  ff -f lavfi -i "${spec%%:*}=size=${spec#*:}:rate=1:duration=1" -frames:v 1 -q:v 2 $BITEXACT "$TMP/orig.jpg"
  c=$(cid "$TMP/orig.jpg"); mv "$TMP/orig.jpg" "blobs/$c.jpg"
  ff -i "blobs/$c.jpg" -vf scale=1000:-2 -q:v 8 $BITEXACT "cdn/$c.jpg"
  echo "image $spec $c"
done
ff -f lavfi -i "testsrc2=size=640x360:rate=15:duration=4" -f lavfi -i "sine=frequency=330:sample_rate=44100:duration=4" \
   -c:v libx264 -preset slow -crf 30 -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 32k -ac 1 \
   -shortest -movflags +faststart $BITEXACT "$TMP/v.mp4"
c=$(cid "$TMP/v.mp4"); mv "$TMP/v.mp4" "blobs/$c.mp4"
mkdir -p "video/$c/360p"
ff -i "blobs/$c.mp4" -c copy -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_filename "video/$c/360p/video%d.ts" $BITEXACT "video/$c/360p/video.m3u8"
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"\n360p/video.m3u8\n' > "video/$c/playlist.m3u8"
ff -i "blobs/$c.mp4" -frames:v 1 -q:v 5 $BITEXACT "video/$c/thumbnail.jpg"
echo "video $c"
