#!/bin/sh
# Regenerates the binary media of the fixture world (photos, avatars, posters, MP4 variants and HLS
# playlists/segments on pbs.twimg.com, video.twimg.com, prod-video-eu-central-1.pscp.tv and an X Space's audio).
# The outputs are committed; run this only to change them, then check the JSON fixtures still agree
# (tests/test_world.py does). Needs ffmpeg (with libx264) and coreutils. Test patterns + tones, bit-exact.
set -eu
cd "$(dirname "$0")"
IMG=../static/img
PBS=pbs.twimg.com
VID=video.twimg.com
PSCP=prod-video-eu-central-1.pscp.tv/Transcoding/v1/hls/wuU5JVHoGqCj1TF6eKKc3yN1fdDpdcmxCsXV3hHk2u4AF8pCbSBHVVs0Nh2e/non_transcode/eu-central-1/periscope-replay-direct-prod-eu-central-1-public
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
BITEXACT="-map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -threads 1"

# A test pattern with a tone: $1 WxH, $2 seconds, $3 tone Hz, $4 crf, $5 output mp4, $6 lavfi source
# (default testsrc2). Keyframes every 2 s so the HLS segments cut at exactly 2 s.
clip() {
  ff -f lavfi -i "${6:-testsrc2}=size=$1:rate=15:duration=$2" -f lavfi -i "sine=frequency=$3:sample_rate=44100:duration=$2" \
     -c:v libx264 -preset slow -profile:v main -crf "$4" -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 \
     -c:a aac -b:a 32k -ac 1 -shortest -movflags +faststart $BITEXACT "$5"
}

# Twitter-style HLS media playlist + segments from an mp4:
# $1 mp4, $2 media id, $3 WxH, $4 playlist name. Segments live at /ext_tw_video/<id>/pu/vid/<from>/<to>/<WxH>/.
twitter_hls() {
  rm -rf "$TMP/seg" && mkdir -p "$TMP/seg"
  ff -i "$1" -c copy -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_filename "$TMP/seg/%d.ts" $BITEXACT "$TMP/seg/index.m3u8"
  mkdir -p "$VID/ext_tw_video/$2/pu/pl/$3"
  out="$VID/ext_tw_video/$2/pu/pl/$3/$4.m3u8"
  : > "$out"
  start=0
  while IFS= read -r line; do
    case "$line" in
      "#EXTINF:"*) dur=${line#\#EXTINF:}; dur=${dur%,}; echo "$line" >> "$out" ;;
      "#"*|"") echo "$line" >> "$out" ;;
      *) ms=$(awk -v d="$dur" 'BEGIN { printf "%d", d * 1000 + 0.5 }')
         end=$((start + ms))
         name=$(sha256sum "$TMP/seg/$line" | cut -c1-16)
         dir="$VID/ext_tw_video/$2/pu/vid/$start/$end/$3"
         mkdir -p "$dir" && cp "$TMP/seg/$line" "$dir/$name.ts"
         echo "/ext_tw_video/$2/pu/vid/$start/$end/$3/$name.ts" >> "$out"
         start=$end ;;
    esac
  done < "$TMP/seg/index.m3u8"
}

# --- photos (tweet 809735236813459457): orig = the demo site's own images, small = at most 680 wide
mkdir -p "$PBS/media/Cz0uXgDWIAAhR3k" "$PBS/media/Cz0uXgFXAAEp9Lm"
cp "$IMG/convoy-halted.jpg" "$PBS/media/Cz0uXgDWIAAhR3k/orig.jpg"
ff -i "$IMG/convoy-halted.jpg" -vf scale=680:-2 -q:v 5 $BITEXACT "$PBS/media/Cz0uXgDWIAAhR3k/small.jpg"
ff -i "$IMG/evacuation-route-map.png" -pix_fmt yuvj444p -q:v 3 $BITEXACT "$PBS/media/Cz0uXgFXAAEp9Lm/orig.jpg"
ff -i "$IMG/evacuation-route-map.png" -vf scale=680:-2 -pix_fmt yuvj420p -q:v 5 $BITEXACT "$PBS/media/Cz0uXgFXAAEp9Lm/small.jpg"

# --- avatars
mkdir -p "$PBS/profile_images/806519067416641536" "$PBS/profile_images/805103012881760256"
ff -f lavfi -i "testsrc=size=48x48:rate=1" -frames:v 1 -q:v 4 $BITEXACT "$PBS/profile_images/806519067416641536/eW3kQ9aT_normal.jpg"
ff -f lavfi -i "mandelbrot=size=48x48:rate=1" -frames:v 1 -q:v 4 $BITEXACT "$PBS/profile_images/805103012881760256/Vd8sJq2L_normal.jpg"
# Its 400x400 size, which an X Space's host avatar is fetched at (yt-dlp asks for _400x400 instead of _normal).
ff -f lavfi -i "mandelbrot=size=400x400:rate=1" -frames:v 1 -q:v 4 $BITEXACT "$PBS/profile_images/805103012881760256/Vd8sJq2L_400x400.jpg"

# --- video tweet 809745591946145792 (media 809745523581321216): three MP4 variants, an HLS master, a poster
M=809745523581321216
for v in "320x180 W4pZx1Lr7kQm0NaC 30" "640x360 b8TqVn3Hs2YdJ6fE 32" "1280x720 Kp2mRc9Xz4LuA7Gw 34"; do
  set -- $v
  mkdir -p "$VID/ext_tw_video/$M/pu/vid/$1"
  clip "$1" 4 440 "$3" "$VID/ext_tw_video/$M/pu/vid/$1/$2.mp4"
done
twitter_hls "$VID/ext_tw_video/$M/pu/vid/320x180/W4pZx1Lr7kQm0NaC.mp4" $M 320x180 Qe4Rb7Ym1Cn8Vs5D
twitter_hls "$VID/ext_tw_video/$M/pu/vid/640x360/b8TqVn3Hs2YdJ6fE.mp4" $M 640x360 Fh2Lk9Pw6Tz3Jx0G
cat > "$VID/ext_tw_video/$M/pu/pl/Nh5sQe8VbT1yZr3K.m3u8" <<M3U8
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=256000,BANDWIDTH=288000,RESOLUTION=320x180,CODECS="mp4a.40.2,avc1.4d400c"
/ext_tw_video/$M/pu/pl/320x180/Qe4Rb7Ym1Cn8Vs5D.m3u8
#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=832000,BANDWIDTH=950000,RESOLUTION=640x360,CODECS="mp4a.40.2,avc1.4d4016"
/ext_tw_video/$M/pu/pl/640x360/Fh2Lk9Pw6Tz3Jx0G.m3u8
M3U8
mkdir -p "$PBS/ext_tw_video_thumb/$M/pu/img"
ff -ss 1 -i "$VID/ext_tw_video/$M/pu/vid/1280x720/Kp2mRc9Xz4LuA7Gw.mp4" -frames:v 1 -q:v 8 $BITEXACT "$PBS/ext_tw_video_thumb/$M/pu/img/Jt6cWd0Ma9PfL2xS.jpg"

# --- HLS-only video tweet 809698357346996224 (media 809698290183311360): portrait, 4 s
M=809698290183311360
clip 180x320 4 660 30 "$TMP/hlsonly.mp4"
twitter_hls "$TMP/hlsonly.mp4" $M 180x320 Gy3Sb6Lm9Xa2Kv4T
cat > "$VID/ext_tw_video/$M/pu/pl/Ur7Hc2Nd5Wq8Ze1B.m3u8" <<M3U8
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=256000,BANDWIDTH=320000,RESOLUTION=180x320,CODECS="mp4a.40.2,avc1.4d400c"
/ext_tw_video/$M/pu/pl/180x320/Gy3Sb6Lm9Xa2Kv4T.m3u8
M3U8
mkdir -p "$PBS/ext_tw_video_thumb/$M/pu/img"
ff -ss 1 -i "$TMP/hlsonly.mp4" -frames:v 1 -q:v 6 $BITEXACT "$PBS/ext_tw_video_thumb/$M/pu/img/Dm1Pz4Fq7Rj0Bw3N.jpg"

# --- Periscope replay 1OdKrBXvMbLKX: a 5 s portrait broadcast as a plain HLS media playlist
mkdir -p "$PSCP"
clip 180x320 5 330 30 "$TMP/periscope.mp4" testsrc
ff -i "$TMP/periscope.mp4" -c copy -f hls -hls_time 2 -hls_playlist_type vod \
   -hls_segment_filename "$PSCP/chunk_%d.ts" $BITEXACT "$PSCP/playlist.m3u8"
ff -ss 1 -i "$TMP/periscope.mp4" -frames:v 1 -q:v 6 $BITEXACT "$PSCP/orig.jpg"
# The same replay as an X broadcast (1YqKDqDXRRvxV) plays it: a master playlist naming the media playlist.
cat > "$PSCP/tw_master_dynamic_16784010912755350398.m3u8" <<M3U8
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=320000,RESOLUTION=180x320,CODECS="mp4a.40.2,avc1.4d400c"
playlist.m3u8
M3U8

# --- Vimeo 196064873: the 4 s video tweet's MP4s (video.twimg.com, above), remuxed without re-encoding into
# Vimeo's adaptive HLS: fMP4 segments, video-only renditions and one audio rendition (GROUP-ID "audio-high").
VIMEO=vod-adaptive-ak.vimeocdn.com/exp=1481943600~hmac=5ff3f9e75453c87655395f5ba82e5577974408252e9406226ec90077bc2536ad/aa3da87e-9682-40f1-9f97-313f3c3f1cff/v2
M=$VID/ext_tw_video/809745523581321216/pu/vid
vimeo_hls() {  # $1 mp4, $2 stream (v|a), $3 rendition uuid
  mkdir -p "$VIMEO/range/avf/$3"
  ff -i "$1" -map "0:$2" -c copy -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 \
     -hls_fmp4_init_filename init.mp4 -hls_segment_filename "$VIMEO/range/avf/$3/segment-%d.m4s" $BITEXACT \
     "$VIMEO/range/avf/$3/media.m3u8"
}
vimeo_hls "$M/320x180/W4pZx1Lr7kQm0NaC.mp4" v d0cc2ff2-6a5d-45ca-b99e-276b6a9c95f0
vimeo_hls "$M/640x360/b8TqVn3Hs2YdJ6fE.mp4" v e690e4d8-7edb-4681-b9f7-d0eac3b3e1c3
vimeo_hls "$M/640x360/b8TqVn3Hs2YdJ6fE.mp4" a 9b461915-bb9d-4b54-9146-50c94532f18e
mkdir -p "$VIMEO/playlist/av/primary"
cat > "$VIMEO/playlist/av/primary/playlist.m3u8" <<M3U8
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-high",NAME="Original",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="1",URI="../../../range/avf/9b461915-bb9d-4b54-9146-50c94532f18e/media.m3u8"
#EXT-X-STREAM-INF:CLOSED-CAPTIONS=NONE,BANDWIDTH=96000,AVERAGE-BANDWIDTH=88000,RESOLUTION=320x180,FRAME-RATE=15.000,CODECS="avc1.4D400C,mp4a.40.2",AUDIO="audio-high"
../../../range/avf/d0cc2ff2-6a5d-45ca-b99e-276b6a9c95f0/media.m3u8
#EXT-X-STREAM-INF:CLOSED-CAPTIONS=NONE,BANDWIDTH=254000,AVERAGE-BANDWIDTH=232000,RESOLUTION=640x360,FRAME-RATE=15.000,CODECS="avc1.4D401E,mp4a.40.2",AUDIO="audio-high"
../../../range/avf/e690e4d8-7edb-4681-b9f7-d0eac3b3e1c3/media.m3u8
M3U8
mkdir -p i.vimeocdn.com/video
ff -ss 2 -i "$M/1280x720/Kp2mRc9Xz4LuA7Gw.mp4" -frames:v 1 -vf scale=640:-2 -q:v 8 $BITEXACT i.vimeocdn.com/video/610823386.jpg

# --- TikTok 7106594312292453675: a 4 s portrait clip (360x640, H.264 + AAC) that is both the h264_360p bitrate
# variant and playAddr, its sound as the music.playUrl MP3, and the cover. TikTok's CDN paths end in "/": the
# files are stored under the object name with an extension (demo_server maps them).
TT=v16-webapp-prime.tiktok.com/video/tos/useast2a/tos-useast2a-ve-0068c001
mkdir -p "$TT" sf16-ies-music-va.tiktokcdn.com/obj/musically-maliva-obj p16-sign-va.tiktokcdn.com/obj/tos-maliva-p-0068
clip 360x640 4 520 38 "$TT/oQAzEfB9IgDvhQnMfRAbCe0qEeJIgT2WAkhnpD.mp4" testsrc
ff -f lavfi -i "sine=frequency=520:sample_rate=44100:duration=4" -c:a libmp3lame -b:a 32k -ac 1 $BITEXACT \
   sf16-ies-music-va.tiktokcdn.com/obj/musically-maliva-obj/7106594360082844463.mp3
ff -ss 1 -i "$TT/oQAzEfB9IgDvhQnMfRAbCe0qEeJIgT2WAkhnpD.mp4" -frames:v 1 -q:v 8 $BITEXACT \
   p16-sign-va.tiktokcdn.com/obj/tos-maliva-p-0068/oIAHfBEQeIgnDh9CAtbfTQzRmZAxCVEgeRkpNB.jpeg

# --- Instagram reel CmOs4ZTnHmh: a 4 s portrait clip as the progressive MP4 of video_versions, the same streams
# split (no re-encoding) into the video-only and audio-only files of its DASH manifest, and the cover picture.
IG=scontent-lhr8-1.cdninstagram.com
mkdir -p "$IG/o1/v/t16/f2/m86" "$IG/o1/v/t2/f2/m78" "$IG/v/t51.29350-15"
clip 360x640 4 600 40 "$IG/o1/v/t16/f2/m86/AQPm4Xq7bN2vLk9sR0tYc1eHw8dJfZ3uGaB5nC6oM.mp4" testsrc2
ff -i "$IG/o1/v/t16/f2/m86/AQPm4Xq7bN2vLk9sR0tYc1eHw8dJfZ3uGaB5nC6oM.mp4" -map 0:v -c copy -movflags +faststart $BITEXACT \
   "$IG/o1/v/t2/f2/m78/AQOv7Hk2Tq9XbL4mR8sN1cWd3eJyF6uZpA0gC5iV.mp4"
ff -i "$IG/o1/v/t16/f2/m86/AQPm4Xq7bN2vLk9sR0tYc1eHw8dJfZ3uGaB5nC6oM.mp4" -map 0:a -c copy -movflags +faststart $BITEXACT \
   "$IG/o1/v/t2/f2/m78/AQNa5Rj8Wd1YcM6kT3vP0bXe7sLqH2gZfU9nB4oE.mp4"
ff -ss 1 -i "$IG/o1/v/t16/f2/m86/AQPm4Xq7bN2vLk9sR0tYc1eHw8dJfZ3uGaB5nC6oM.mp4" -frames:v 1 -q:v 8 $BITEXACT \
   "$IG/v/t51.29350-15/319042876_1187443621909427_5518203174962231108_n.jpg"

# --- X Space 1OwxWwQOPlNxQ: its replay as X serves a Space's audio: an HLS media playlist of packed audio (ADTS AAC)
# chunks of 2 s (no MPEG-TS), at a path holding "audio-space" (yt-dlp tells audio Spaces from video ones by it).
SP=prod-fastly-eu-west-3.video.pscp.tv/Transcoding/v1/hls/Ymk0NzE2MzkzY2Q1YjYxNzRh/non_transcode/eu-west-3/periscope-replay-direct-prod-eu-west-3-public/audio-space
mkdir -p "$SP" "$TMP/sp"
ff -f lavfi -i "sine=frequency=523:sample_rate=44100:duration=6" -c:a aac -b:a 32k -ac 1 $BITEXACT \
   -f segment -segment_time 2 -segment_format adts "$TMP/sp/chunk_%d.aac"
{ printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n'
  for i in 1 2 3; do
    cp "$TMP/sp/chunk_$((i - 1)).aac" "$SP/chunk_1686256230000_${i}_a.aac"
    printf '#EXTINF:2.000,\nchunk_1686256230000_%d_a.aac\n' "$i"
  done
  printf '#EXT-X-ENDLIST\n'; } > "$SP/playlist_16798.m3u8"

du -sh --apparent-size .
