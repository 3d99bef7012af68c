"""`dhtlink deploy`: build the Lambda artifact, lint the template, deploy with boto3.

The artifact is the cloud/ package alone (no local endpoint, no host tools, no third-party
code: boto3 ships with the Lambda runtime), so the zip stays small and cold starts fast.
Without AWS credentials or a region the command builds and validates, then says what
is missing.
"""

import argparse
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Any

from cloud.protocol import token_sha256
from host_tools.common import add_aws_account_options, duration, warn_renamed
from host_tools.errors import CommandError, UsageError

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "cloud" / "template.yaml"
BUILD = REPO / ".build"
# Host side, never imported by a handler: the laptop endpoint, its SQLite store and its alert loop.
LAMBDA_EXCLUDE = ("local", "stores/sqlite.py", "alerts/local.py", "homeassistant/bridge.py")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)  # the template's AllowedValues
# The template's Runtime. Its bytecode goes in the zip when this interpreter is at hand: the
# Lambda's code directory is read-only, so without it every cold start compiles our source
# (bench/cloud_coldstart.py: most of the handler's import overhead).
RUNTIME_PYTHON = "python3.12"
LAMBDA_ROOT = "/var/task"  # where Lambda unpacks the zip: the source paths the bytecode names


def _in_artifact(relative: Path) -> bool:
    """Python sources, and the dashboard's page, scripts and their licence."""
    return relative.suffix == ".py" or (relative.parts[:2] == ("dashboard", "static") and "." in relative.name)


def build_artifact(build_dir: Path | None = None) -> Path:
    """Copy cloud/ into build_dir/lambda (default .build/) and zip it; returns the zip."""
    build_dir = build_dir or BUILD
    staging = build_dir / "lambda"
    shutil.rmtree(staging, ignore_errors=True)
    source = REPO / "cloud"
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in LAMBDA_EXCLUDE or relative.as_posix() in LAMBDA_EXCLUDE or not _in_artifact(relative):
            continue
        target = staging / "cloud" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    compile_for_runtime(staging)
    archive = build_dir / "dhtlink-lambda.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            # A fixed date: the same sources give the same zip, so an unchanged stack stays unchanged.
            info = zipfile.ZipInfo(str(path.relative_to(staging)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return archive


def compile_for_runtime(staging: Path) -> bool:
    """Bytecode of staging/cloud for RUNTIME_PYTHON, if installed: unchecked-hash pycs (no
    timestamps, so the same sources give the same zip) naming their sources under
    LAMBDA_ROOT. Returns whether it did; without that interpreter the zip holds source only."""
    import subprocess

    python = shutil.which(RUNTIME_PYTHON)
    wanted = RUNTIME_PYTHON.removeprefix("python")
    if python is None:
        return False
    ask = [python, "-c", "import platform; print(platform.python_version())"]
    found = subprocess.run(ask, capture_output=True, text=True, check=False)  # a version manager's shim may fail
    if found.returncode or not found.stdout.startswith(wanted + "."):
        return False
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
        + ["-s", str(staging), "-p", LAMBDA_ROOT, str(staging / "cloud")],
        check=True,
    )
    return True


def lint(template: Path = TEMPLATE) -> None:
    from cfnlint.api import lint_file

    problems = lint_file(template)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise CommandError(f"cfn-lint found {len(problems)} problem(s) in {template}:\n{listing}")


def aws_session(region: str | None) -> Any:
    """A boto3 session, or CommandError naming everything that is missing (credentials, region)."""
    import boto3

    session = boto3.Session(region_name=region)
    missing = []
    if session.get_credentials() is None:
        missing.append(
            "AWS credentials (set AWS_PROFILE after `aws configure`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    if not session.region_name:
        missing.append("an AWS region (pass --region or set AWS_REGION, e.g. eu-west-1)")
    if missing:
        raise CommandError("missing " + " and ".join(missing))
    return session


def template_for(bucket: str, key: str, template: Path = TEMPLATE) -> str:
    """The template with CodeUri pointing at the uploaded artifact."""
    text = template.read_text()
    local = "    CodeUri: ../.build/lambda\n"
    if local not in text:
        raise CommandError(f"{template}: expected Globals.Function.CodeUri ../.build/lambda")
    return text.replace(local, f"    CodeUri:\n      Bucket: {bucket}\n      Key: {key}\n")


def stack_parameters(exists: bool, settings: dict[str, str | None]) -> list[dict[str, Any]]:
    """CloudFormation parameters: the ones given, else the stack's previous values on an update.

    Without UsePreviousValue an update would silently reset a parameter to its default.
    `settings` maps parameter names to a value or None (not given); a new stack without a
    ReadToken gets a fresh random one.
    """
    given = dict(settings)
    if not exists and not given.get("ReadToken"):
        given["ReadToken"] = secrets.token_urlsafe(32)
    if "ReadToken" in given:  # the stack keeps only the token's hash (cloud/template.yaml)
        token = given.pop("ReadToken")
        given = {"ReadTokenSha256": token and token_sha256(token), **given}
    parameters: list[dict[str, Any]] = []
    for name, value in given.items():
        if value is not None:
            parameters.append({"ParameterKey": name, "ParameterValue": value})
        elif exists:
            parameters.append({"ParameterKey": name, "UsePreviousValue": True})
    return parameters


ARTIFACT_PREFIX = "dhtlink-artifacts-"


def artifact_bucket(s3: Any, region: str, account: str) -> str:
    """This account's artifact bucket for the region, or a new name for one. The name ends
    in a random part, so nobody can create it in their account before we do (a predictable
    name would let another account receive our code); it is found again by listing this
    account's own buckets."""
    prefix = f"{ARTIFACT_PREFIX}{region}-"
    for listed in s3.list_buckets().get("Buckets", []):
        if listed["Name"].startswith(prefix):
            return str(listed["Name"])
    return prefix + secrets.token_hex(8)


def create_artifact_bucket(s3: Any, bucket: str, region: str) -> None:
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced", **options)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def deploy(
    session: Any, stack: str, archive: Path, bucket: str | None, settings: dict[str, str | None] | None = None
) -> dict[str, str]:
    """Upload the artifact and create or update the stack; returns its outputs (plus ReadToken if new)."""
    import hashlib

    from botocore.exceptions import ClientError, WaiterError

    cfn = session.client("cloudformation")
    s3 = session.client("s3")
    account = session.client("sts").get_caller_identity()["Account"]
    bucket = bucket or artifact_bucket(s3, session.region_name, account)
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise CommandError(
                f"bucket {bucket} is not one of this account's ({account}): choose another --bucket"
            ) from None
        create_artifact_bucket(s3, bucket, session.region_name)
    key = f"dhtlink/{hashlib.sha256(archive.read_bytes()).hexdigest()[:16]}.zip"
    # ExpectedBucketOwner on every call: a bucket of that name in another account (taken
    # before ours, or after ours was deleted) gets a 403, never our code.
    s3.upload_file(str(archive), bucket, key, ExtraArgs={"ExpectedBucketOwner": account})
    try:
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError:
        status = None
    if status == "ROLLBACK_COMPLETE":
        raise CommandError(
            f"stack {stack} failed to create and was rolled back; delete it "
            f"(aws cloudformation delete-stack --stack-name {stack}) and deploy again"
        )
    # REVIEW_IN_PROGRESS: an earlier first deploy stopped at its change set; it is still a create.
    exists = status not in (None, "REVIEW_IN_PROGRESS")
    defaults = {
        "ReadToken": None,
        "RetentionDays": None,
        "LogRetentionDays": None,
        "AlarmEmail": None,
        "AlertEmail": None,
        "HomeAssistant": None,
        "ApiRateLimit": None,
        "ApiBurstLimit": None,
    }
    given = {**defaults, **(settings or {})}
    if not exists and not given["ReadToken"]:
        given["ReadToken"] = secrets.token_urlsafe(32)
    token = given["ReadToken"]
    parameters = stack_parameters(exists, given)
    change_set = f"dhtlink-{key.split('/')[-1][:16]}"
    try:
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName=change_set,
            ChangeSetType="UPDATE" if exists else "CREATE",
            TemplateBody=template_for(bucket, key),
            Parameters=parameters,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise
        print(f"stack {stack} is already up to date")
        return stack_outputs(cfn, stack)
    try:
        cfn.get_waiter("change_set_create_complete").wait(StackName=stack, ChangeSetName=change_set)
    except WaiterError:
        reason = cfn.describe_change_set(StackName=stack, ChangeSetName=change_set).get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cfn.delete_change_set(StackName=stack, ChangeSetName=change_set)
            print(f"stack {stack} is already up to date")
            return stack_outputs(cfn, stack)
        raise CommandError(f"change set {change_set} of stack {stack} failed: {reason}") from None
    cfn.execute_change_set(StackName=stack, ChangeSetName=change_set)
    waiter = "stack_update_complete" if exists else "stack_create_complete"
    cfn.get_waiter(waiter).wait(StackName=stack, WaiterConfig={"Delay": 10, "MaxAttempts": 180})
    outputs = stack_outputs(cfn, stack)
    if token:
        outputs["ReadToken"] = token
    return outputs


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="build, validate and deploy the receiver to AWS",
        description="Zip cloud/ for Lambda, lint cloud/template.yaml, and deploy it as a CloudFormation stack "
        "with boto3 (credentials from the usual AWS environment). Without credentials it stops after "
        "building and validating.",
    )
    parser.add_argument("--stack", metavar="NAME", default="dhtlink", help="stack name (default dhtlink)")
    add_aws_account_options(parser)
    parser.add_argument("--bucket", default=None, help="S3 bucket for the artifact (default: one per account)")
    parser.add_argument(
        "--retention",
        metavar="DURATION",
        default=None,
        help="keep readings this long, in whole days, e.g. 400d (default 400d; kept on update)",
    )
    parser.add_argument(
        "--log-retention",
        metavar="DURATION",
        default=None,
        help=f"keep Lambda logs this long, one of {', '.join(f'{d}d' for d in LOG_RETENTION_DAYS)} (default 30d)",
    )
    # The old spellings, in days; unlisted.
    parser.add_argument("--retention-days", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-retention-days", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--alarm-email", default=None, help="send alarm notifications here ('' for none)")
    parser.add_argument(
        "--alert-email", default=None, help="send sensor alerts of `dhtlink alerts add --email` here ('' for none)"
    )
    parser.add_argument(
        "--home-assistant",
        choices=("off", "iot-core"),
        default=None,
        help="iot-core: publish Home Assistant discovery to AWS IoT Core for your Mosquitto to bridge in "
        "(docs/home-assistant.md; default off, kept on update)",
    )
    parser.add_argument(
        "--api-rate-limit",
        type=int,
        default=None,
        help="requests a second each API route takes before answering 429, 1 to 10000 (default 5000; "
        "kept on update; docs/deploy.md, Growing)",
    )
    parser.add_argument(
        "--api-burst-limit", type=int, default=None, help="requests at once above the rate, 1 to 5000 (default 5000)"
    )
    parser.add_argument(
        "--rotate-read-token", action="store_true", help="replace the read token with a new one and print it once"
    )
    parser.set_defaults(func=run)


def _days(option: str, value: str | None, old_option: str, old_value: str | None) -> int | None:
    """Whole days from a DURATION (or from the old option's bare number of days)."""
    if old_value is not None:
        if value is not None:
            raise UsageError(f"{old_option} is the old spelling of {option}: give one of them")
        warn_renamed(f"{old_option} N", f"{option} Nd")
        value = f"{old_value}d" if old_value.isdigit() else old_value
    if value is None:
        return None
    return duration(option, value, 86400, 36500 * 86400, whole=86400) // 86400


def settings_from(args: argparse.Namespace) -> dict[str, str | None]:
    """The stack parameters the flags set, validated up front; None keeps the deployed value."""
    retention = _days("--retention", args.retention, "--retention-days", args.retention_days)
    log_retention = _days("--log-retention", args.log_retention, "--log-retention-days", args.log_retention_days)
    if retention is not None and not 1 <= retention <= 36500:
        raise UsageError(f"--retention must be from 1d to 36500d, got {retention}d")
    if log_retention is not None and log_retention not in LOG_RETENTION_DAYS:
        raise UsageError(f"--log-retention must be one of {', '.join(f'{d}d' for d in LOG_RETENTION_DAYS)}")
    if args.api_rate_limit is not None and not 1 <= args.api_rate_limit <= 10000:
        raise UsageError("--api-rate-limit must be 1 to 10000 requests a second (more needs an AWS quota increase)")
    if args.api_burst_limit is not None and not 1 <= args.api_burst_limit <= 5000:
        raise UsageError("--api-burst-limit must be 1 to 5000 requests")
    for flag, address in (("--alarm-email", args.alarm_email), ("--alert-email", args.alert_email)):
        if address and ("@" not in address or " " in address):
            raise UsageError(f"{flag} {address!r} is not an e-mail address")
    return {
        "ReadToken": secrets.token_urlsafe(32) if args.rotate_read_token else None,
        "RetentionDays": None if retention is None else str(retention),
        "LogRetentionDays": None if log_retention is None else str(log_retention),
        "AlarmEmail": args.alarm_email,
        "AlertEmail": args.alert_email,
        "HomeAssistant": args.home_assistant,
        "ApiRateLimit": None if args.api_rate_limit is None else str(args.api_rate_limit),
        "ApiBurstLimit": None if args.api_burst_limit is None else str(args.api_burst_limit),
    }


def run(args: argparse.Namespace) -> int:
    if not args.stack.replace("-", "").isalnum() or not args.stack[:1].isalpha() or len(args.stack) > 128:
        raise UsageError("--stack must start with a letter and hold only letters, digits and -")
    settings = settings_from(args)
    archive = build_artifact()
    print(f"built {archive} ({archive.stat().st_size} bytes, cloud/ only)")
    lint()
    print(f"validated {TEMPLATE} (cfn-lint)")
    try:
        session = aws_session(args.region)
    except CommandError as missing:
        raise CommandError(f"{missing}. Nothing was deployed; the artifact is ready at {archive}.") from None
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    try:
        outputs = deploy(session, args.stack, archive, args.bucket, settings)
    except (ClientError, BotoCoreError, WaiterError) as error:
        raise CommandError(
            f"AWS refused the deploy of stack {args.stack}: {error}. "
            "See the stack's events in the CloudFormation console for the resource that failed."
        ) from None
    for key, value in outputs.items():
        print(f"{key:<18} {value}")
    if "ReadToken" in outputs:
        print("The read token is shown once here; keep it (the stack stores only its SHA-256).")
    print(f"Boards POST to {outputs.get('ApiUrl', '<ApiUrl>')}/data")
    return 0
