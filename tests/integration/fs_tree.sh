#!/usr/bin/env bash
# Real trees on a dhtfs mount: copy /usr/include in (cp -a) and compare it
# (diff -r, modes, sizes, mtimes with nanoseconds, symlink targets); a tar
# round trip inside the mount; git init/add/commit/fsck/gc inside the mount
# and a clone out of it; renaming the whole tree (must not cost a rewrite of
# its descendants); rm -r of the tree. FS_TREE_SRC overrides the source.
source "$(dirname "$0")/fs_lib.sh"
fs_require git tar diff
SRC=${FS_TREE_SRC:-/usr/include}
[ -d "$SRC" ] || fail "$SRC is missing"
fs_ring
M=$T/mnt
mount_fs "$M" -o cache_mb=16

# --- copy a real tree in and compare it
nfiles=$(find "$SRC" -type f | wc -l)
start=$EPOCHREALTIME
timeout 280 cp -a "$SRC" "$M/inc" 2>"$T/cp.err" ||
    fail "cp -a $SRC into the mount failed or took over 280 s: $(head -c 600 "$T/cp.err")"
copy_s=$(since "$start")
log "cp -a of $nfiles files ($(du -sh "$SRC" | cut -f1)) took ${copy_s}s"
timeout 120 diff -r --no-dereference "$SRC" "$M/inc" >"$T/diff.out" 2>&1 ||
    fail "diff -r $SRC $M/inc: $(head -n 20 "$T/diff.out")"
(cd "$SRC" && find . -printf '%p|%y|%m|%s|%T@|%l\n' | sort) >"$T/src.meta"
(cd "$M/inc" && find . -printf '%p|%y|%m|%s|%T@|%l\n' | sort) >"$T/copy.meta"
# directory sizes are file-system specific
grep -v '|d|' "$T/src.meta" >"$T/src.meta2" || true
grep -v '|d|' "$T/copy.meta" >"$T/copy.meta2" || true
diff "$T/src.meta2" "$T/copy.meta2" >"$T/meta.diff" ||
    soft_fail "type/mode/size/mtime/target of $(grep -c "^<" "$T/meta.diff") of $(wc -l <"$T/src.meta2") non-directories differ after cp -a (path|type|mode|size|mtime|target; < source, > copy): $(head -n 8 "$T/meta.diff" | tr "\n" " ")"
(cd "$SRC" && find . -type d -printf '%p|%m|%T@\n' | sort) >"$T/src.dmeta"
(cd "$M/inc" && find . -type d -printf '%p|%m|%T@\n' | sort) >"$T/copy.dmeta"
diff "$T/src.dmeta" "$T/copy.dmeta" >"$T/dmeta.diff" ||
    soft_fail "directory mode/mtime differ after cp -a: $(head -n 20 "$T/dmeta.diff")"
log "diff -r of the copy ok"

# --- tar round trip inside the mount
sub=$(cd "$M/inc" && find . -mindepth 1 -maxdepth 1 -type d -printf '%P\n' | sort | sed -n 1p)
[ -d "$M/inc/linux" ] && sub=linux
tar -C "$M/inc" -cf "$M/sub.tar" "$sub" || fail "tar -c of $sub inside the mount failed"
tar -C "$SRC" -cf "$T/sub.tar" "$sub"
check_eq "tar listing of the mount's copy" "$(tar -tf "$M/sub.tar" | sort | sha256sum)" \
    "$(tar -tf "$T/sub.tar" | sort | sha256sum)"
mkdir "$M/untar"
tar -C "$M/untar" -xf "$M/sub.tar" || fail "tar -x inside the mount failed"
diff -r --no-dereference "$SRC/$sub" "$M/untar/$sub" >"$T/diff.out" 2>&1 ||
    fail "tar round trip of $sub differs: $(head -n 20 "$T/diff.out")"
log "tar round trip of $sub ($(tar -tf "$M/sub.tar" | wc -l) entries) ok"

# --- git inside the mount
export HOME=$T GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
g() {
    git -c user.name=dhtfs-test -c user.email=test@dhtfs.invalid -c init.defaultBranch=main "$@"
}
mkdir "$M/repo"
cp -a "$SRC/$sub" "$M/repo/src"
(
    cd "$M/repo"
    g init -q || fail "git init failed"
    g add -A || fail "git add failed"
    g commit -q -m first || fail "git commit failed"
    [ -z "$(g status --porcelain)" ] || fail "git status not clean after commit: $(g status --porcelain | head)"
    f=$(find src -type f | sort | sed -n 1p)
    echo "/* changed */" >>"$f"
    g commit -q -a -m second || fail "second git commit failed"
    check_eq "commits in git log" "$(g log --oneline | wc -l)" 2
    g fsck --full --strict 2>"$T/fsck.err" || fail "git fsck failed: $(head "$T/fsck.err")"
    g gc -q 2>"$T/gc.err" || fail "git gc failed: $(head "$T/gc.err")"
    g fsck --full 2>"$T/fsck.err" || fail "git fsck after gc failed: $(head "$T/fsck.err")"
    g diff --stat HEAD~1 HEAD >"$T/gitdiff" || fail "git diff failed"
    grep -q "1 file changed, 1 insertion" "$T/gitdiff" || fail "git diff HEAD~1: $(cat "$T/gitdiff")"
)
g clone -q "$M/repo" "$T/clone" || fail "git clone out of the mount failed"
diff -r --no-dereference --exclude=.git "$M/repo" "$T/clone" >"$T/diff.out" 2>&1 ||
    fail "clone of the repository differs from the work tree: $(head -n 20 "$T/diff.out")"
log "git init/add/commit/fsck/gc/clone ok"

# --- rename the whole tree: cheap, and everything follows
start=$EPOCHREALTIME
mv "$M/inc" "$M/inc2" || fail "mv of the copied tree failed"
mv_s=$(since "$start")
[ ! -e "$M/inc" ] || fail "old tree name still exists after mv"
less_than "$mv_s" 5 ||
    fail "renaming a directory of $nfiles files took ${mv_s}s (a rename must not rewrite descendants)"
f=$(cd "$SRC" && find . -type f | sort | tail -n 1)
check_same_file "deep file after renaming the tree" "$M/inc2/$f" "$SRC/$f"
check_eq "file count after renaming the tree" "$(find "$M/inc2" -type f | wc -l)" "$nfiles"
log "rename of the tree took ${mv_s}s"

# --- rm -r
start=$EPOCHREALTIME
timeout 120 rm -r "$M/inc2" "$M/untar" "$M/repo" || fail "rm -r of the trees failed"
rm_s=$(since "$start")
[ ! -e "$M/inc2" ] || fail "tree still exists after rm -r"
check_eq "entries left in the root" "$(find "$M" -mindepth 1 | sort | tr '\n' ' ')" "$M/sub.tar "
umount_fs "$M"
log "rm -r took ${rm_s}s (copy ${copy_s}s)"
finish
