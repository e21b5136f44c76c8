;; hello: teep's demo Trusted Component.
;;
;; A WASI preview1 command (see docs/components.md).  When run it writes:
;;
;;   Hello from a Trusted Component inside the simulated TEE!
;;   stdin: <whatever it was given on stdin, if anything>
;;   config: <the content of /config, if Personalization Data is installed>
;;
;; Memory layout (one 64 KiB page):
;;   0..31      scratch: one iovec (ptr, len), result cells
;;   64..511    constant strings
;;   4096..     read buffer (BUF_SIZE bytes)
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close"
    (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open
      (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; scratch cells
  (global $IOV i32 (i32.const 0))       ;; iovec: buf ptr at 0, len at 4
  (global $NBYTES i32 (i32.const 8))    ;; bytes read or written
  (global $OPENED i32 (i32.const 12))   ;; fd returned by path_open
  (global $BUF i32 (i32.const 4096))
  (global $BUF_SIZE i32 (i32.const 32768))

  ;; constant strings (offset, length given where used)
  (data (i32.const 64)
    "Hello from a Trusted Component inside the simulated TEE!\n")  ;; 57
  (data (i32.const 128) "stdin: ")                                ;; 7
  (data (i32.const 144) "config: ")                               ;; 8
  (data (i32.const 160) "\n")                                     ;; 1
  (data (i32.const 176) "config")                                 ;; 6

  ;; Write len bytes at ptr to stdout, retrying after short writes.
  ;; Gives up silently on an error: there is no one else to tell.
  (func $write (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (global.get $IOV) (local.get $ptr))
        (i32.store (i32.add (global.get $IOV) (i32.const 4)) (local.get $len))
        (br_if $done
          (call $fd_write (i32.const 1) (global.get $IOV) (i32.const 1)
                          (global.get $NBYTES)))
        (local.set $ptr
          (i32.add (local.get $ptr) (i32.load (global.get $NBYTES))))
        (local.set $len
          (i32.sub (local.get $len) (i32.load (global.get $NBYTES))))
        (br $more))))

  ;; Copy everything readable from fd to stdout.  The label (at lptr, llen)
  ;; is written before the first byte, and a newline after the last, so an
  ;; empty input produces no output at all.
  (func $echo (param $fd i32) (param $lptr i32) (param $llen i32)
    (local $n i32)
    (local $total i32)
    (block $eof
      (loop $more
        (i32.store (global.get $IOV) (global.get $BUF))
        (i32.store (i32.add (global.get $IOV) (i32.const 4)) (global.get $BUF_SIZE))
        (br_if $eof
          (call $fd_read (local.get $fd) (global.get $IOV) (i32.const 1)
                         (global.get $NBYTES)))
        (local.set $n (i32.load (global.get $NBYTES)))
        (br_if $eof (i32.eqz (local.get $n)))
        (if (i32.eqz (local.get $total))
          (then (call $write (local.get $lptr) (local.get $llen))))
        (call $write (global.get $BUF) (local.get $n))
        (local.set $total (i32.add (local.get $total) (local.get $n)))
        (br $more)))
    (if (local.get $total)
      (then (call $write (i32.const 160) (i32.const 1)))))

  (func (export "_start")
    (call $write (i32.const 64) (i32.const 57))
    (call $echo (i32.const 0) (i32.const 128) (i32.const 7))

    ;; Personalization Data: "config" in the preopened root directory,
    ;; which WASI numbers 3.  Rights: fd_read (bit 1) only.
    (if (i32.eqz
          (call $path_open
            (i32.const 3) (i32.const 0) (i32.const 176) (i32.const 6)
            (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0)
            (global.get $OPENED)))
      (then
        (call $echo (i32.load (global.get $OPENED)) (i32.const 144) (i32.const 8))
        (drop (call $fd_close (i32.load (global.get $OPENED))))))))
