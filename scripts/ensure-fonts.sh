#!/usr/bin/env bash
# Make sure Debian's Noto Color Emoji font is installed: the PDF reports draw emoji with it
# (core/reports/pdf.py; without it an emoji prints as its name, e.g. "[wrapped present]").
set -euo pipefail
FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ -f "$FONT" ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-fonts: $FONT is missing; PDF reports will name emoji instead of drawing them" \
       "(install Debian's 'fonts-noto-color-emoji' package)" >&2
  exit 0
fi
echo "ensure-fonts: installing Debian's fonts-noto-color-emoji" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq fonts-noto-color-emoji >&2
