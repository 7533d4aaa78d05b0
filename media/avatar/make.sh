#!/usr/bin/env sh
# Makes the built-in synthetic avatar embedded by package media: an idle loop
# and a talking clip, 2 s each, VP8 320x240 at 25 fps (IVF, a key frame every
# second and on the first frame) and Opus 48 kHz stereo in 20 ms packets, one
# packet per Ogg page (silent when idle, a 220 Hz voice-like tone while talking).
# Run it from this folder with ffmpeg 5 or later; the outputs are committed.
set -eu
face="drawbox=x=100:y=40:w=120:h=160:color=0xe0b090:t=fill,drawbox=x=125:y=80:w=20:h=14:color=black:t=fill,drawbox=x=175:y=80:w=20:h=14:color=black:t=fill"
vp8="-c:v libvpx -deadline realtime -cpu-used 8 -b:v 150k -g 25 -keyint_min 25 -auto-alt-ref 0 -pix_fmt yuv420p -f ivf"
opus="-c:a libopus -b:a 32k -frame_duration 20 -page_duration 20000 -application audio -f ogg"

ffmpeg -y -loglevel error -f lavfi -i "color=c=0x305070:s=320x240:r=25:d=2" \
  -vf "$face,drawbox=x=140:y=150:w=40:h=4:color=0x803030:t=fill" $vp8 idle.ivf
ffmpeg -y -loglevel error -f lavfi -i "color=c=0x305070:s=320x240:r=25:d=2" \
  -vf "$face,drawbox=x=140:y=140:w=40:h='6+18*abs(sin(t*9))':color=0x803030:t=fill" $vp8 talk.ivf
ffmpeg -y -loglevel error -f lavfi -i "anullsrc=r=48000:cl=stereo" -t 2 $opus idle.ogg
ffmpeg -y -loglevel error -f lavfi -i "sine=f=220:r=48000:d=2" \
  -af "volume='0.15+0.6*abs(sin(t*9))':eval=frame,aformat=channel_layouts=stereo" $opus talk.ogg
