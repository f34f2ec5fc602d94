"""Short-lived S3 credentials kept in an SSM SecureString parameter, referenced by name.

The values live only in SSM and in memory. Models hold them as ``SecretStr`` so a repr, a log
line or an exception message can never show them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shared.errors import CredentialsError
from shared.redaction import register

# Credentials this close to their expiry count as expired: a shard must finish with them.
EXPIRY_MARGIN_MINUTES = 2
PARAMETER_REFUSED_CODES = {
    "AccessDeniedException",
    "AccessDenied",
    "ParameterVersionNotFound",
    "InvalidKeyId",
    "KMSAccessDeniedException",
}


class S3Credentials(BaseModel):
    """The NSIDC ``/s3credentials`` shape (also used for an external output store)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    access_key_id: SecretStr = Field(alias="accessKeyId")
    secret_access_key: SecretStr = Field(alias="secretAccessKey")
    session_token: SecretStr | None = Field(default=None, alias="sessionToken")
    expiration: datetime | None = None
    endpoint_url: str | None = Field(default=None, alias="endpointUrl")
    region: str | None = None

    def model_post_init(self, context: Any) -> None:
        # Every credential value that enters the process is known to the redaction point.
        register(*(s.get_secret_value() for s in (self.access_key_id, self.secret_access_key, self.session_token) if s))

    def expired(self, margin: timedelta = timedelta(minutes=EXPIRY_MARGIN_MINUTES)) -> bool:
        if self.expiration is None:
            return False
        expiration = self.expiration if self.expiration.tzinfo else self.expiration.replace(tzinfo=UTC)
        return datetime.now(UTC) + margin >= expiration

    def for_client(self) -> dict[str, str]:
        """The plain key-style dict handed to boto3/obstore, and nowhere else."""
        out = {
            "accessKeyId": self.access_key_id.get_secret_value(),
            "secretAccessKey": self.secret_access_key.get_secret_value(),
        }
        if self.session_token:
            out["sessionToken"] = self.session_token.get_secret_value()
        if self.endpoint_url:
            out["endpointUrl"] = self.endpoint_url
        if self.region:
            out["region"] = self.region
        return out

    def to_parameter_value(self) -> str:
        doc: dict[str, Any] = self.for_client()
        if self.expiration:
            doc["expiration"] = self.expiration.isoformat()
        return json.dumps(doc)


def obstore_s3_config(credentials: dict[str, str] | None = None) -> dict[str, Any] | None:
    """obstore's S3 configuration: keys from ``credentials`` (key style, see ``for_client``) or
    boto3's default chain (the role); the endpoint from them or AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL (an emulator, addressed path-style; AWS virtual-hosted). None without keys."""
    import boto3

    credentials = credentials or {}
    region = credentials.get("region")
    if credentials:
        key, secret, token = credentials["accessKeyId"], credentials["secretAccessKey"], credentials.get("sessionToken")
    else:
        session = boto3.session.Session()
        found = session.get_credentials()
        if found is None:
            return None
        frozen = found.get_frozen_credentials()
        key, secret, token, region = frozen.access_key, frozen.secret_key, frozen.token, session.region_name
        register(key, secret, token)
    config: dict[str, Any] = {
        "aws_access_key_id": key,
        "aws_secret_access_key": secret,
        "aws_region": region or "us-west-2",
    }
    if token:
        config["aws_session_token"] = token
    endpoint = (
        credentials.get("endpointUrl") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config.update(
        {"aws_endpoint": endpoint, "aws_virtual_hosted_style_request": False}
        if endpoint
        else {"aws_virtual_hosted_style_request": True}
    )
    return config


def parse_credentials(text: str, where: str) -> S3Credentials:
    try:
        return S3Credentials.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        # Never echo the text: it may hold a secret.
        raise CredentialsError(
            f"{where} does not hold S3 credentials (accessKeyId, secretAccessKey[, sessionToken, expiration])"
        ) from None


def parameter_name(prefix: str, run_id: str, purpose: str = "read") -> str:
    return f"{prefix.rstrip('/')}/runs/{run_id}/{purpose}-credentials"


def put_credentials(ssm: Any, name: str, credentials: S3Credentials) -> None:
    """Store as a SecureString; with an expiry, attach SSM's Expiration policy (Advanced tier)."""
    kwargs: dict[str, Any] = {}
    if credentials.expiration is not None:
        expiration = (
            credentials.expiration if credentials.expiration.tzinfo else credentials.expiration.replace(tzinfo=UTC)
        )
        kwargs = {
            "Tier": "Advanced",
            "Policies": json.dumps(
                [
                    {
                        "Type": "Expiration",
                        "Version": "1.0",
                        "Attributes": {"Timestamp": expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")},
                    }
                ]
            ),
        }
    ssm.put_parameter(Name=name, Value=credentials.to_parameter_value(), Type="SecureString", Overwrite=True, **kwargs)


def get_credentials(ssm: Any, name: str) -> S3Credentials:
    """The credentials in parameter ``name``, read now."""
    return read_parameter(SSMProvider(boto3_client=ssm), name, refresh=True)


def read_parameter(provider: SSMProvider, name: str, max_age: int = 0, refresh: bool = False) -> S3Credentials:
    """The credentials in parameter ``name`` through Powertools' parameters utility: cached for
    ``max_age`` seconds, read again at once with ``refresh``. A missing or refused parameter is a
    :class:`CredentialsError`; throttling and service errors are raised as botocore's ClientError
    (worth retrying)."""
    try:
        value = provider.get(name, decrypt=True, max_age=max_age, force_fetch=refresh)
    except GetParameterError as exc:
        cause = exc.__context__
        if not isinstance(cause, ClientError):
            raise CredentialsError(f"cannot read credentials parameter {name}: {type(cause).__name__}") from None
        code = cause.response["Error"]["Code"]
        if code == "ParameterNotFound":
            raise CredentialsError(
                f"credentials parameter {name} not found (expired and removed?): refresh the credentials and redrive"
            ) from None
        if code in PARAMETER_REFUSED_CODES:
            raise CredentialsError(f"cannot read credentials parameter {name}: {code}") from None
        raise cause from None
    return parse_credentials(str(value), f"parameter {name}")
