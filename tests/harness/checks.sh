# Sourced by the suites (tests/*.sh), after they set $bin: the check they
# count with, and what they ask the node under test.

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
