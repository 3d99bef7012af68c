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

from host_tools.errors import CommandError, UsageError

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "cloud" / "template.yaml"
BUILD = REPO / ".build"
LAMBDA_EXCLUDE = ("local",)  # the laptop endpoint: never imported by a handler


def build_artifact(build_dir: Path = BUILD) -> Path:
    """Copy cloud/ into build_dir/lambda and zip it; returns the zip."""
    staging = build_dir / "lambda"
    shutil.rmtree(staging, ignore_errors=True)
    source = REPO / "cloud"
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        if relative.parts[0] in LAMBDA_EXCLUDE:
            continue
        target = staging / "cloud" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    archive = build_dir / "dhtlink-lambda.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(staging.rglob("*.py")):
            # A fixed date: the same sources give the same zip, so an unchanged stack stays unchanged.
            info = zipfile.ZipInfo(str(path.relative_to(staging)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return archive


def lint(template: Path = TEMPLATE) -> None:
    from cfnlint.api import lint_file

    problems = lint_file(template)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise CommandError(f"cfn-lint found {len(problems)} problem(s) in {template}:\n{listing}")


def aws_session(region: str | None) -> Any:
    import boto3

    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise CommandError(
            "no AWS credentials: set AWS_PROFILE (aws configure) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if not session.region_name:
        raise CommandError("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1)")
    return session


def template_for(bucket: str, key: str, template: Path = TEMPLATE) -> str:
    """The template with CodeUri pointing at the uploaded artifact."""
    text = template.read_text()
    local = "    CodeUri: ../.build/lambda\n"
    if local not in text:
        raise CommandError(f"{template}: expected Globals.Function.CodeUri ../.build/lambda")
    return text.replace(local, f"    CodeUri:\n      Bucket: {bucket}\n      Key: {key}\n")


def deploy(session: Any, stack: str, archive: Path, bucket: str | None) -> dict[str, str]:
    import hashlib

    from botocore.exceptions import ClientError, WaiterError

    cfn = session.client("cloudformation")
    s3 = session.client("s3")
    account = session.client("sts").get_caller_identity()["Account"]
    bucket = bucket or f"dhtlink-artifacts-{account}-{session.region_name}"
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        options = (
            {}
            if session.region_name == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": session.region_name}}
        )
        s3.create_bucket(Bucket=bucket, **options)
    key = f"dhtlink/{hashlib.sha256(archive.read_bytes()).hexdigest()[:16]}.zip"
    s3.upload_file(str(archive), bucket, key)
    try:
        cfn.describe_stacks(StackName=stack)
        exists = True
    except ClientError:
        exists = False
    parameters = (
        [{"ParameterKey": "ReadToken", "UsePreviousValue": True}]
        if exists
        else [{"ParameterKey": "ReadToken", "ParameterValue": secrets.token_urlsafe(32)}]
    )
    change_set = f"dhtlink-{key.split('/')[-1][:16]}"
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=change_set,
        ChangeSetType="UPDATE" if exists else "CREATE",
        TemplateBody=template_for(bucket, key),
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    try:
        cfn.get_waiter("change_set_create_complete").wait(StackName=stack, ChangeSetName=change_set)
    except WaiterError:
        reason = cfn.describe_change_set(StackName=stack, ChangeSetName=change_set).get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            return stack_outputs(cfn, stack)
        raise CommandError(f"change set failed: {reason}") from None
    cfn.execute_change_set(StackName=stack, ChangeSetName=change_set)
    waiter = "stack_update_complete" if exists else "stack_create_complete"
    cfn.get_waiter(waiter).wait(StackName=stack, WaiterConfig={"Delay": 10, "MaxAttempts": 180})
    outputs = stack_outputs(cfn, stack)
    if not exists:
        outputs["ReadToken"] = parameters[0]["ParameterValue"]
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
    parser.add_argument("--stack", default="dhtlink", help="stack name (default dhtlink)")
    parser.add_argument("--region", default=None, help="AWS region (default from the AWS environment)")
    parser.add_argument("--bucket", default=None, help="S3 bucket for the artifact (default: one per account)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.stack.replace("-", "").isalnum() or not args.stack[:1].isalpha() or len(args.stack) > 128:
        raise UsageError("--stack must start with a letter and hold only letters, digits and -")
    archive = build_artifact()
    print(f"built {archive} ({archive.stat().st_size} bytes, cloud/ only)")
    lint()
    print(f"validated {TEMPLATE} (cfn-lint)")
    try:
        session = aws_session(args.region)
    except CommandError as missing:
        raise CommandError(f"{missing}. Nothing was deployed; the artifact is ready at {archive}.") from None
    outputs = deploy(session, args.stack, archive, args.bucket)
    for key, value in outputs.items():
        print(f"{key:<18} {value}")
    if "ReadToken" in outputs:
        print("The read token is shown once; it is also a NoEcho stack parameter.")
    print(f"Boards POST to {outputs.get('ApiUrl', '<ApiUrl>')}/data")
    return 0
