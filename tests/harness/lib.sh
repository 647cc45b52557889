# Sourced by every script that runs mkve's binaries: the suites
# (tests/*.sh), scripts/demo, scripts/check-templates and bench/*.sh.
# Where this tree is, where the binaries are (said once, here), and the
# check the suites count with.
#
#   . "$(dirname "$0")/../tests/harness/lib.sh"
#   use_bins NAME debug|release [DIR]

# This tree, and the private libvirtd the suites start (libvirtd-netns).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
harness=$top/tests/harness/libvirtd-netns

# use_bins WHO PROFILE [DIR]: where mkve's binaries are, in $bin (an
# absolute path) and exported as MKVE_BINDIR, which libvirtd-netns writes
# into libvirt's lxc hook and the service checks read. The directory is
# DIR when given (a script's BINDIR argument), else $MKVE_BINDIR, else
# cargo's PROFILE directory (debug or release) under $CARGO_TARGET_DIR
# (default: target/ of this tree). Nothing is taken from PATH or from a
# build that another target happened to leave: every tool must be in that
# directory, or the script ends here (69) naming the missing one and how
# to build it.
use_bins() {
    local who=$1 profile=$2 dir=${3:-${MKVE_BINDIR:-}} tool build
    [ -n "$dir" ] || dir=${CARGO_TARGET_DIR:-$top/target}/$profile
    case $profile in
        release) build="cargo build --release --workspace, or make" ;;
        *) build="cargo build --workspace" ;;
    esac
    for tool in mkve-bundle mkve-cache mkve-net mkve-vm mkve-web; do
        if [ ! -x "$dir/$tool" ]; then
            echo "$who: $dir/$tool is not built ($build), or set MKVE_BINDIR to the directory of mkve's binaries" >&2
            exit 69
        fi
    done
    bin=$(cd "$dir" && pwd)
    export MKVE_BINDIR=$bin
}

# check WHAT COMMAND...: run COMMAND; "ok - WHAT" and one more passed, or
# "FAIL - WHAT" and one more failed.
check() {
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $what"
    else failed=$((failed + 1)); echo "FAIL - $what"; fi
}

# The IDs of mkve's machines on the node, on one line.
machines() { "$bin/mkve-vm" list --json | python3 -c 'import json,sys; print(" ".join(str(m["id"]) for m in json.load(sys.stdin)))'; }
# How many DHCP entries the mkve network has.
hosts() { "$bin/mkve-net" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))'; }
