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
