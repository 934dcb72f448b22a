#!/usr/bin/env bash
# Deploy ANB Video to AWS: build and push the image, create or update the stack, wait for the
# services, smoke-test /health. Needs the AWS CLI v2 (credentials and region configured), Docker
# with buildx, git, curl.
#
#   deploy/scripts/deploy.sh [ParameterKey=value ...]
#   e.g. deploy/scripts/deploy.sh LabRoleArn=arn:aws:iam::123456789012:role/LabRole WorkerCpu=1024 WorkerMemory=2048
#   deploy/scripts/deploy.sh $(benches/capacity.py --parameters)   # the worker's size and scaling from `make bench`
#
# Environment: STACK_NAME (default anb-video), IMAGE_TAG (default: the commit, plus a time stamp
# when the tree has changes; tags are immutable in the repository).
set -euo pipefail
cd "$(dirname "$0")/../.."
stack=${STACK_NAME:-anb-video}
template=deploy/cloudformation/infrastructure-fargate.yaml
overrides=("$@")
tag=${IMAGE_TAG:-$(git rev-parse --short=12 HEAD)}
if [[ -z ${IMAGE_TAG:-} && -n $(git status --porcelain) ]]; then
  tag="$tag-dirty-$(date +%Y%m%d%H%M%S)"
fi

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

deploy_stack() { # ImageTag value
  # Parameters not given keep their previous values on updates.
  aws cloudformation deploy --stack-name "$stack" --template-file "$template" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "ImageTag=$1" ${overrides[@]+"${overrides[@]}"}
}

# 1. The first deployment creates everything, the repository included, with both services at
#    zero tasks (there is no image to run yet).
if ! aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1; then
  echo "Creating stack $stack (services at zero tasks until the image is pushed)"
  deploy_stack ""
fi

# 2. The image, built for Fargate's X86_64, pushed once per tag.
repository=$(output RepositoryUri)
registry=${repository%%/*}
aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
if aws ecr describe-images --repository-name "${repository#*/}" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  echo "Image $repository:$tag already pushed"
else
  docker buildx build --platform linux/amd64 -f deploy/docker/Dockerfile -t "$repository:$tag" --push .
fi

# 3. The services on the new image; CloudFormation waits for the stack, ECS for the tasks.
echo "Deploying image tag $tag"
deploy_stack "$tag"
cluster=$(output ClusterName)
aws ecs wait services-stable --cluster "$cluster" --services anb-video-web-service anb-video-worker-service

# 4. Smoke test through the load balancer.
url=$(output LoadBalancerUrl)
for _ in $(seq 30); do
  if curl -fsS --max-time 5 "$url/health"; then
    echo
    echo "ANB Video is up at $url (API docs: $url/docs)"
    exit 0
  fi
  sleep 10
done
echo "$url/health did not answer 200 within 5 minutes; see the /ecs/anb-video-web log group" >&2
exit 1
