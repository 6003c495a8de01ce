#!/usr/bin/env bash
# Schedules the retraining of cloudbuild.yaml: a manual Cloud Build trigger on this
# repository, and a Cloud Scheduler job that runs it (weekly by default).
#
#   PROJECT=my-project BUCKET=my-bucket REPO=projects/P/locations/R/connections/C/repositories/NAME \
#     deploy/schedule.sh
#
# Settings (environment):
#   PROJECT, BUCKET, REPO   required; REPO is the Cloud Build (2nd gen) repository resource
#   REGION                  default us-central1
#   BRANCH                  default main
#   SCHEDULE                cron, default "0 3 * * 1" (Mondays 03:00)
#   TIME_ZONE               default Etc/UTC
#   TRIGGER                 default nima-retrain
#   BUILD_SA                service account the build, Dataflow and Vertex AI run as; default nima-retrain@PROJECT
#   SCHEDULER_SA            service account Cloud Scheduler calls the trigger with; default nima-scheduler@PROJECT
#   DRY_RUN=1               print the gcloud commands instead of running them
#
# Roles granted (the least this pipeline needs):
#   BUILD_SA:     roles/cloudbuild.builds.builder  (run the build's steps)
#                 roles/dataflow.admin, roles/dataflow.worker  (submit the build; run as its workers)
#                 roles/aiplatform.user  (custom jobs, Model Registry)
#                 roles/storage.objectAdmin on the bucket only  (data, runs, serving)
#                 roles/iam.serviceAccountUser on itself  (jobs run as BUILD_SA)
#                 roles/logging.logWriter
#   SCHEDULER_SA: roles/cloudbuild.builds.editor  (run the trigger)
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET}" "${REPO:?set REPO (the Cloud Build repository resource)}"
REGION="${REGION:-us-central1}"
BRANCH="${BRANCH:-main}"
SCHEDULE="${SCHEDULE:-0 3 * * 1}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
TRIGGER="${TRIGGER:-nima-retrain}"
BUILD_SA="${BUILD_SA:-nima-retrain@${PROJECT}.iam.gserviceaccount.com}"
SCHEDULER_SA="${SCHEDULER_SA:-nima-scheduler@${PROJECT}.iam.gserviceaccount.com}"

run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

ensure_service_account() {
  local email="$1" name="${1%%@*}"
  if [ "${DRY_RUN:-0}" = 1 ] || ! gcloud iam service-accounts describe "$email" --project="$PROJECT" >/dev/null 2>&1; then
    run gcloud iam service-accounts create "$name" --project="$PROJECT" --display-name="$name"
  fi
}

ensure_service_account "$BUILD_SA"
ensure_service_account "$SCHEDULER_SA"

for role in roles/cloudbuild.builds.builder roles/dataflow.admin roles/dataflow.worker roles/aiplatform.user roles/logging.logWriter; do
  run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:${BUILD_SA}" --role="$role" --condition=None
done
run gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" --member="serviceAccount:${BUILD_SA}" --role=roles/storage.objectAdmin
run gcloud iam service-accounts add-iam-policy-binding "$BUILD_SA" --project="$PROJECT" \
  --member="serviceAccount:${BUILD_SA}" --role=roles/iam.serviceAccountUser
run gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:${SCHEDULER_SA}" \
  --role=roles/cloudbuild.builds.editor --condition=None

run gcloud builds triggers create manual --project="$PROJECT" --region="$REGION" --name="$TRIGGER" \
  --repository="$REPO" --branch="$BRANCH" --build-config=cloudbuild.yaml \
  --service-account="projects/${PROJECT}/serviceAccounts/${BUILD_SA}" \
  --substitutions="_BUCKET=${BUCKET},_REGION=${REGION},_SERVICE_ACCOUNT=${BUILD_SA}"

run gcloud scheduler jobs create http "${TRIGGER}-weekly" --project="$PROJECT" --location="$REGION" \
  --schedule="$SCHEDULE" --time-zone="$TIME_ZONE" --http-method=POST \
  --uri="https://cloudbuild.googleapis.com/v1/projects/${PROJECT}/locations/${REGION}/triggers/${TRIGGER}:run" \
  --message-body="{\"branchName\": \"${BRANCH}\"}" \
  --oauth-service-account-email="$SCHEDULER_SA"

echo "Scheduled: trigger ${TRIGGER} runs cloudbuild.yaml on ${BRANCH} at '${SCHEDULE}' (${TIME_ZONE})."
echo "Run it now: gcloud builds triggers run ${TRIGGER} --region=${REGION} --branch=${BRANCH}"
