"""`dhtlink alerts ... --aws`: the alerts table and topic from the stack's outputs (moto)."""

import json

import boto3
from moto import mock_aws

from cloud.stores.dynamodb import create_alerts_table, create_tables
from host_tools.cli import main


def stack(outputs):
    template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=json.dumps(template))


def test_alerts_against_a_deployed_stack(aws_env, capsys):
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        create_alerts_table(boto3.client("dynamodb"), "stack-alerts")
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="stack-alerts")["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        stack(
            {
                "ReadingsTableName": {"Value": "stack-readings"},
                "DevicesTableName": {"Value": "stack-devices"},
                "AlertsTableName": {"Value": "stack-alerts"},
                "AlertsTopicArn": {"Value": topic},
            }
        )
        assert main(["alerts", "add", "--aws", "--all", "--stale", "30m", "--email", "--json"]) == 0
        out, err = capsys.readouterr()
        rule_id = json.loads(out)["rule"]["rule_id"]
        assert "no alerts SNS topic" not in err
        items = boto3.client("dynamodb").query(
            TableName="stack-alerts",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "rule"}},
        )["Items"]
        assert [item["sk"]["S"] for item in items] == [rule_id]
        assert main(["alerts", "test", rule_id, "--aws"]) == 0
        assert "email ok" in capsys.readouterr().out
        (mail,) = sqs.receive_message(QueueUrl=queue)["Messages"]
        assert json.loads(mail["Body"])["Subject"].startswith("dhtlink test: any-device")
        assert main(["alerts", "remove", rule_id, "--aws"]) == 0


def test_a_stack_deployed_before_alerts_says_so(aws_env, capsys):
    with mock_aws():
        stack({"ReadingsTableName": {"Value": "r"}, "DevicesTableName": {"Value": "d"}})
        assert main(["alerts", "list", "--aws"]) == 1
        err = capsys.readouterr().err
        assert "no AlertsTableName output" in err and "make deploy" in err
