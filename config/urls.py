"""URL routes: the authenticated scheduled-task trigger API lives under /api/v1/scheduled/."""

urlpatterns: list = []
