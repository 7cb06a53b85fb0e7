;
; synscope - additional p0f v3 signatures
; ---------------------------------------
;
; Parsed after Debian's p0f.fp (same syntax, same parser state: the classes and the last
; section of p0f.fp still apply, so start every block with a [section] header). Signatures
; here must not duplicate p0f.fp ones: the loader rejects lines "already covered" by an
; earlier signature, exactly like p0f does.
;
; Licence: MIT OR Apache-2.0, like the rest of synscope.
;

; ---------------------------------------------------------------------------------------
; Learned from the User-Agent (`analyze --suggest-sigs`, issue 22), each with its evidence.
; Source: the shared public corpus (shared/pcaps, listed in its SOURCES.tsv: captures of
; huginn-net, tcpdump and zeek), default thresholds (at least 3 hosts, at most 10% of them
; conflicting), learned against p0f.fp, 2026-12-07. `--db builtin:p0f.fp` leaves them out.
; ---------------------------------------------------------------------------------------

[tcp:request]

; evidence: 3 hosts whose User-Agent names Mac OS X, 0 conflicting hosts, 26 observations;
;   first seen 2014-12-29 16:23:09 UTC, last seen 2017-08-03 14:34:37 UTC; before: Mac OS X
;   (generic); in: zeek's testing/btest/Traces/http/websocket.pcap,
;   http/percent-end-of-line.pcap, ssh/ssh.client-side-half-duplex.pcap, ssh/ssh.pcap.
;   About 25 more hosts of the corpus send it with no User-Agent; p0f.fp matches it only
;   with its generic Mac OS X label (window scale 5: not one of its specific 10.x ones).
label = s:unix:Mac OS X:(learned)
sig   = 4:64:0:1460:65535,5:mss,nop,ws,nop,nop,ts,sok,eol+1:df,id+:0
