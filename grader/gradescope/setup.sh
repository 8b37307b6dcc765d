#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image; the zip's contents
# (this repository without solutions/answers.yaml being optional) are in /autograder/source.
set -euo pipefail
cd /autograder/source
python3 -m venv /autograder/venv
# Gradescope has no GPU: the CPU build of torch, not the multi-GB default.
/autograder/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
/autograder/venv/bin/pip install -e .
