# IdempotencyKey, moved here from validibot.core: state only, its table (core_idempotencykey)
# was created by core's 0001 and is kept as it is.

import django.utils.timezone
from django.db import migrations, models

import validibot.operations.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="IdempotencyKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key", models.CharField(max_length=255, unique=True)),
                        ("request_fingerprint", models.CharField(blank=True, max_length=64)),
                        ("response_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("response_body", models.JSONField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("expires_at", models.DateTimeField(db_index=True, default=validibot.operations.models.default_idempotency_expiry)),
                    ],
                    options={"db_table": "core_idempotencykey"},
                ),
            ],
        ),
    ]
