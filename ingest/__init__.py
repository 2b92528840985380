"""Upload intake only: multipart and tus (resumable) uploads bounded, sniffed, probed, recorded and enqueued all
or nothing, and the sweep of what interrupted uploads leave behind."""
