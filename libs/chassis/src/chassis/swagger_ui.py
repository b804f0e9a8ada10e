"""Self-hosted API documentation: Swagger UI served by the process itself, so ``/docs`` works offline.

The Swagger UI files come from the ``swagger-ui-bundle-v2`` package, pinned in ``uv.lock`` (its
version is the Swagger UI version it ships), and are served under ``/docs/assets/``: a page never
loads a script or a style sheet from a CDN, so it renders on a network with no way out, and what
it runs is the reviewed, locked version rather than whatever a CDN serves that day.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from chassis.problems import NotFound

#: Where the assets are served; every page links them from here.
ASSETS_PATH = "/docs/assets"

#: The files a page uses, with their media types; nothing else of the bundle is served.
ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}

#: Swagger UI settings every page uses. Its default ``validatorUrl`` makes the browser send the
#: document's address to validator.swagger.io for a badge; no page of ours calls out.
OFFLINE_PARAMETERS: dict[str, object] = {"validatorUrl": None}

_DIRECTORY = Path(str(swagger_ui_path))

router = APIRouter(include_in_schema=False)


def asset_url(name: str) -> str:
    """The path a page links ``name`` (a key of ``ASSETS``) from; KeyError for anything else."""
    ASSETS[name]  # an asset that is not served must not be linked
    return f"{ASSETS_PATH}/{name}"


@router.get(ASSETS_PATH + "/{name}")
async def swagger_ui_asset(name: str) -> FileResponse:
    """One Swagger UI file from the pinned package; 404 (a problem) for any other name."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset named {name!r}")
    return FileResponse(_DIRECTORY / name, media_type=media_type)


def swagger_ui_page(title: str, openapi_url: str) -> HTMLResponse:
    """FastAPI's Swagger UI page for the document at ``openapi_url``, with local assets."""
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=asset_url("swagger-ui-bundle.js"),
        swagger_css_url=asset_url("swagger-ui.css"),
        swagger_favicon_url=asset_url("favicon-32x32.png"),
        swagger_ui_parameters=OFFLINE_PARAMETERS,
    )
