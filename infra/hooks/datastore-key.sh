#!/bin/sh
# azd postprovision hook: makes the datastore's encryption key in Key Vault, once.
#
# The key (32 random bytes, base64) never passes through a deployment parameter, an output, a command line or a
# log: it goes from the random source to a file only this user can read, from there to Key Vault, and the file is
# removed. An existing key is never replaced (every datastore secret sealed so far needs it). The Function app reads
# it through the Key Vault reference in Storm__Datastore__EncryptionKey.
set -eu

vault="${STORM_KEY_VAULT_NAME:?STORM_KEY_VAULT_NAME is not set: run this hook through azd (it comes from main.bicep outputs)}"
secret="${STORM_DATASTORE_KEY_SECRET_NAME:?STORM_DATASTORE_KEY_SECRET_NAME is not set: run this hook through azd}"
group="${AZURE_RESOURCE_GROUP:?AZURE_RESOURCE_GROUP is not set: run this hook through azd}"
app="${AZURE_FUNCTION_APP_NAME:?AZURE_FUNCTION_APP_NAME is not set: run this hook through azd}"

command -v az >/dev/null 2>&1 || { echo "datastore-key: the Azure CLI (az) is needed to create the datastore key" >&2; exit 1; }

# The deploying user's Key Vault Secrets Officer role was just assigned and can take a few minutes to apply:
# a refusal is retried, anything else is an answer.
attempt=1
while :; do
  if error=$(az keyvault secret show --vault-name "$vault" --name "$secret" --query id --output none 2>&1); then
    echo "datastore-key: $secret already exists in $vault; left as it is"
    exit 0
  fi
  case "$error" in
    *SecretNotFound*|*"was not found"*) break ;;
    *) ;;
  esac
  if [ "$attempt" -ge 20 ]; then
    echo "datastore-key: could not read $vault after $attempt attempts: $error" >&2
    exit 1
  fi
  echo "datastore-key: $vault not readable yet (role assignments apply within minutes); retrying in 15 s"
  attempt=$((attempt + 1))
  sleep 15
done

umask 077
keyfile=$(mktemp)
trap 'rm -f "$keyfile"' EXIT INT TERM
head -c 32 /dev/urandom | base64 | tr -d '\n' > "$keyfile"
az keyvault secret set --vault-name "$vault" --name "$secret" --file "$keyfile" --encoding utf-8 \
  --content-type "base64 of 32 bytes: the ServerlessStorm datastore key" --output none
echo "datastore-key: created $secret in $vault"

# The app resolves its Key Vault references when it starts; a restart picks up the new key at once.
az functionapp restart --resource-group "$group" --name "$app" --output none
echo "datastore-key: restarted $app so it reads the key"
