"""Local-disk media served as static files (embedded mode). nginx takes this path over at scale."""

from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from core.blobs import cache_control_for, content_type_for


class MediaFiles(StaticFiles):
    """StaticFiles gives Range, ETag and Last-Modified; this adds the store's headers per key."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = cache_control_for(str(full_path))
        response.headers["Content-Type"] = content_type_for(str(full_path))
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
