"""Request body bounds that nginx and the API nodes both enforce, so the two must agree.

nginx refuses an oversized body first (infra.nginx); a node refuses it again while it streams in (api.limits),
which is all the embedded mode has.
"""

# What a multipart upload's body may carry beyond the file itself: boundaries and the title field around it.
MULTIPART_SLACK = 64 * 1024
