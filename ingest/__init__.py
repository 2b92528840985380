"""Upload intake: size limits, container sniffing, probing, recording and enqueueing."""
