"""OIDC clients and tokens: a minimal stand-in for upstream's identity provider.

Upstream's IdP code is not public; these hold what ``purge_stale_oidc_clients`` decides on.
A client registered through OIDC Dynamic Client Registration (RFC 7591) has
``dynamically_registered`` set; its last activity is ``last_used_at`` (the last token issued
or used), else ``created_at``. A token is *live* while it is neither revoked nor expired.
"""

from django.db import models
from django.utils import timezone


class OIDCClient(models.Model):
    """A relying party allowed to ask this IdP for tokens."""

    client_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    dynamically_registered = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OIDC client"
        indexes = [
            models.Index(
                fields=["last_used_at", "created_at"],
                condition=models.Q(dynamically_registered=True),
                name="oidcclient_dcr_activity",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.client_id


class OIDCToken(models.Model):
    """An access or refresh token issued to a client; deleted with its client."""

    client = models.ForeignKey(OIDCClient, on_delete=models.CASCADE, related_name="tokens")
    expires_at = models.DateTimeField()
    revoked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "OIDC token"

    def __str__(self) -> str:
        return f"token {self.pk} of {self.client_id}"
