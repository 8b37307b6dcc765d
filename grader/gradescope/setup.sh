#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image from the zip (whose
# contents are in /autograder/source). Its Ubuntu base images have python3, but not always pip or
# venv (Ubuntu 22.04 needs python3-venv for `python3 -m venv`): install them first. bubblewrap is
# best effort (the sandbox falls back to a uid of its own, as root, where namespaces are refused).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv
apt-get install -y -qq bubblewrap || echo "no bubblewrap: student code runs under a uid of its own"
cd /autograder/source
python3 -m venv /autograder/venv
# Gradescope has no GPU: the CPU build of torch, not the multi-GB default.
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
/autograder/venv/bin/pip install -e .
