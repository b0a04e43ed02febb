#!/usr/bin/env bash
# POSIX ACLs on a mount made by root (the kernel checks them,
# default_permissions):
#   - setfacl/getfacl round trip of an access ACL (named user and group,
#     mask); the mode's group bits show the mask; removing it (setfacl -b)
#     leaves a plain mode
#   - access decisions follow the ACL: uid 65534 reads a 0600 file only
#     once an entry grants it, cannot write it, and the mask limits it
#   - chmod changes the mask (POSIX), so chmod g-r takes the grant away
#   - a directory's default ACL is inherited by a new file (limited by the
#     mode asked for, no umask) and by a new directory (as its default too)
#   - another mount sees the ACL, and a change made on one mount governs
#     access through the other after the attribute timeout
#   - an invalid ACL value is refused (EINVAL), a default ACL on a file too
source "$(dirname "$0")/fs_lib.sh"
fs_require setfacl getfacl python3
fs_require_root
fs_ring
chmod 755 "$T" # other users must reach the mount point
M=$T/a
B=$T/b
mount_fs "$M"
mount_fs "$B"
chmod 755 "$M"

acl_of() { getfacl -acn --absolute-names "$1" 2>/dev/null | grep -v '^$' | tr '\t\n' '  '; }

# --- round trip
echo secret >"$M/f"
chmod 0600 "$M/f"
expect_err "Permission denied" "${AS_NOBODY[@]}" cat "$M/f"
expect_ok setfacl -m u:65534:r,g:65534:rw "$M/f"
check_eq "getfacl after setfacl" "$(acl_of "$M/f")" \
    "user::rw- user:65534:r-- group::--- group:65534:rw- mask::rw- other::--- "
check_eq "mode with an ACL (group bits = mask)" "$(stat -c %a "$M/f")" 660
# --- access follows the ACL
check_eq "uid 65534 reads through its ACL entry" "$("${AS_NOBODY[@]}" cat "$M/f")" secret
expect_err "Permission denied" "${AS_NOBODY[@]}" sh -c 'echo x >>"$1"' _ "$M/f"
# The group entry grants rw to gid 65534; the uid entry (r) wins for the user.
expect_ok setfacl -x u:65534 "$M/f"
expect_ok "${AS_NOBODY[@]}" sh -c 'echo more >>"$1"' _ "$M/f"
# chmod g-rw sets the mask to ---: the group grant is masked off.
chmod g-rw "$M/f"
check_eq "mask after chmod g-rw" "$(getfacl -cn --absolute-names "$M/f" | grep '^mask')" "mask::---"
expect_err "Permission denied" "${AS_NOBODY[@]}" cat "$M/f"
chmod g+r "$M/f"
check_eq "uid 65534 reads again once the mask allows r" "$("${AS_NOBODY[@]}" head -1 "$M/f")" secret
# --- another mount sees it (fresh lookup there)
sleep 2
check_eq "getfacl on mount b" "$(acl_of "$B/f")" "$(acl_of "$M/f")"
# An ACL change on mount a governs access through mount b once b's
# attribute cache (1 s) has expired: b had already read and used the ACL.
"${AS_NOBODY[@]}" cat "$B/f" >/dev/null || fail "uid 65534 cannot read through mount b"
expect_ok setfacl -m g:65534:--- "$M/f"
sleep 2
expect_err "Permission denied" "${AS_NOBODY[@]}" cat "$B/f"
expect_ok setfacl -m g:65534:r "$M/f"
sleep 2
"${AS_NOBODY[@]}" cat "$B/f" >/dev/null || fail "mount b did not see the grant restored"
# --- removing the ACL
expect_ok setfacl -b "$M/f"
# The owning group keeps its own entry (---), not the mask, as on ext4.
check_eq "getfacl after setfacl -b" "$(acl_of "$M/f")" "user::rw- group::--- other::--- "
getfattr -m - -d "$M/f" 2>/dev/null | grep -q posix_acl && fail "an ACL xattr survived setfacl -b"
expect_err "Permission denied" "${AS_NOBODY[@]}" cat "$M/f"

# --- default ACL inheritance
mkdir "$M/d"
expect_ok setfacl -d -m u:65534:rwx,g::r-x,o::--- "$M/d"
expect_ok setfacl -m u:65534:rwx "$M/d"
(umask 077 && echo inherited >"$M/d/new")
check_eq "inherited ACL of a new file" "$(acl_of "$M/d/new")" \
    "user::rw- user:65534:rwx #effective:rw- group::r-x #effective:r-- mask::rw- other::--- "
check_eq "mode of a new file (umask ignored, mode limits)" "$(stat -c %a "$M/d/new")" 660
echo by-nobody | "${AS_NOBODY[@]}" tee -a "$M/d/new" >/dev/null ||
    fail "uid 65534 cannot write through the inherited entry"
(umask 077 && mkdir "$M/d/sub")
check_eq "inherited access ACL of a new directory" "$(acl_of "$M/d/sub")" \
    "user::rwx user:65534:rwx group::r-x mask::rwx other::--- "
check_eq "inherited default ACL of a new directory" \
    "$(getfacl -cdn --absolute-names "$M/d/sub" | grep -v '^$' | tr '\t\n' '  ')" \
    "user::rwx user:65534:rwx group::r-x mask::rwx other::--- "
"${AS_NOBODY[@]}" touch "$M/d/sub/x" || fail "uid 65534 cannot create in the inherited directory"
# Without a default ACL the umask applies as usual.
(umask 027 && echo plain >"$M/plain")
check_eq "mode of a file made under umask 027" "$(stat -c %a "$M/plain")" 640

# --- bad values
python3 - "$M/f" "$M/d" <<'PY' || fail "bad ACL values were not refused"
import errno, os, sys
f, d = sys.argv[1], sys.argv[2]
def err(path, name, value):
    try:
        os.setxattr(path, name, value)
        return 0
    except OSError as e:
        return e.errno
# version 2, user::rw- only (no group, no other)
bad = bytes([2, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0])
got = err(f, "system.posix_acl_access", bad)
if got != errno.EINVAL:
    sys.exit("malformed access ACL: errno %d" % got)
good = bytes([2, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 0, 0, 32, 0, 4, 0, 0, 0, 0, 0])
got = err(f, "system.posix_acl_default", good)
if got != errno.EACCES:
    sys.exit("default ACL on a file: errno %d" % got)
if err(d, "system.posix_acl_default", good) != 0:
    sys.exit("a plain default ACL on a directory was refused")
PY
echo PASS
