"""The authenticated HTTP trigger (POST /api/v1/scheduled/<id>/)."""
