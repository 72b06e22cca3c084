"""The HTTP side of attachments: the upload, and every download (files are never served from
MEDIA_ROOT directly, by Django or by nginx).

``POST /rooms/<room>/attachments/`` (multipart, one ``file``, the CSRF token in ``X-CSRFToken``)
answers ``201 {"attachment": <entry>}`` (the entry of a `message` frame, chat.protocol) or
``{"error": "..."}`` with 400 (no file), 403 (not logged in), 404 (no such room, or a private
one the user may not read), 413 (too large), 415 (a type that is not accepted) or 429 (too many
uploads not sent yet).

``GET /attachments/<id>/`` and ``GET /attachments/<id>/thumbnail/`` check, on every request,
that the user may read the room and that the message is not deleted (chat.attachments
.may_download); anyone else gets 404, as for a private room. The answer's Content-Type is the
type the content was found to be, never the uploader's; images are shown inline, every other
file is a download (``Content-Disposition: attachment``); ``nosniff`` and a CSP that allows
nothing to run come with every file. Browsers revalidate each time (``private, no-cache`` with an
ETag), so a removed member's browser does not keep showing what the server now refuses.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
)
from django.views.decorators.http import require_POST, require_safe

from chat import access, attachments, services, uploads
from chat.models import Attachment

# A file opened on its own in a tab runs nothing and loads nothing but itself.
FILE_CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self'; sandbox"


def _refusal(status: int, detail: str) -> JsonResponse:
    response = JsonResponse({"error": detail}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def upload(request: HttpRequest, slug: str) -> JsonResponse:
    """Store one uploaded file for the room `slug` (see the module docstring)."""
    if not request.user.is_authenticated:
        return _refusal(403, "Log in to upload files.")
    room = services.get_room(slug)
    if room is None or not access.can_read(request.user, room):
        return _refusal(404, f"There is no room {slug!r}.")
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > uploads.max_bytes() + settings.CHAT_ATTACHMENT_FORM_OVERHEAD:
        return _refusal(413, uploads.too_large().detail)
    files = request.FILES.getlist("file")
    if len(files) != 1:
        return _refusal(400, "Send one file, as the form field 'file'.")
    try:
        attachment = uploads.store_upload(request.user, room, files[0])
    except uploads.UploadRefused as refusal:
        return _refusal(refusal.status, refusal.detail)
    response = JsonResponse({"attachment": attachments.entry(attachment)}, status=201)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def download(request: HttpRequest, pk: int) -> HttpResponse:
    """The file itself: inline for an image, a download for anything else."""
    return _serve(request, pk, thumbnail=False)


@require_safe
def thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    """An image's thumbnail (WebP); 404 for a file that is not an image."""
    return _serve(request, pk, thumbnail=True)


def _serve(request: HttpRequest, pk: int, thumbnail: bool) -> HttpResponse:
    found = Attachment.objects.select_related("room", "message").filter(pk=pk).first()
    if found is None or not attachments.may_download(request.user, found):
        raise Http404("There is no such file.")
    stored = found.thumbnail if thumbnail else found.file
    if not stored:
        raise Http404("This file has no thumbnail.")
    etag = f'"{found.key}{"-thumbnail" if thumbnail else ""}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        try:
            handle = default_storage.open(stored.name, "rb")
        except FileNotFoundError:
            raise Http404("There is no such file.") from None
        if thumbnail:
            response = FileResponse(handle, content_type="image/webp")
        else:
            response = FileResponse(
                handle,
                content_type=found.content_type,
                as_attachment=not found.is_image,
                filename=found.name,
            )
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CONTENT_SECURITY_POLICY
    return response
